package labrun

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/weftmesh/weft/wire"
)

// MustCLI is CLI that fails the test on error, returning trimmed output.
func (d *Device) MustCLI(args ...string) string {
	d.t.Helper()
	out, err := d.CLI(args...)
	if err != nil {
		d.t.Fatalf("%s: %v", d.Name, err)
	}
	return strings.TrimSpace(out)
}

// Gateways is `weft gateway list --json`: the peers offering routes and this device's
// gateway choices.
func (d *Device) Gateways() (wire.Gateways, error) {
	var g wire.Gateways
	out, err := d.CLI("gateway", "list", "--json")
	if err != nil {
		return g, err
	}
	if err := json.Unmarshal([]byte(out), &g); err != nil {
		return g, fmt.Errorf("%s: gateway list is not JSON: %w: %s", d.Name, err, out)
	}
	return g, nil
}

// VirtualDevices is `weft vdev list --json`: the virtual devices this device hosts.
func (d *Device) VirtualDevices() ([]wire.Device, error) {
	var l wire.VDevList
	out, err := d.CLI("vdev", "list", "--json")
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		return nil, fmt.Errorf("%s: vdev list is not JSON: %w: %s", d.Name, err, out)
	}
	return l.VDevs, nil
}
