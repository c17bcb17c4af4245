package broker

import (
	"slices"
	"strings"

	"github.com/weftmesh/weft/wire"
)

// Deterministic order makes map updates reproducible and their tests exact.
func sortDevices(ds []wire.Device) {
	slices.SortFunc(ds, func(a, b wire.Device) int { return strings.Compare(a.Name, b.Name) })
}

func sortStrings(s []string) { slices.Sort(s) }
