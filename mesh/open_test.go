package mesh

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/weftmesh/weft/wire"
)

func TestCheckMode(t *testing.T) {
	for _, ok := range []string{"", ModeAuto, ModeKernel, ModeUserspace} {
		if err := CheckMode(ok); err != nil {
			t.Errorf("CheckMode(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"Kernel", "user", "fast", " auto"} {
		if err := CheckMode(bad); err == nil {
			t.Errorf("CheckMode(%q) accepted", bad)
		}
	}
}

// TestOpenInvalidMode: a bad mode is refused before anything is created.
func TestOpenInvalidMode(t *testing.T) {
	k, err := wire.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	const name = "weft-badmode"
	dev, err := Open(Config{TUNName: name, PrivateKey: k, Address: netip.MustParsePrefix("100.64.0.5/10"), Mode: "fast"})
	if err == nil {
		dev.Close()
		t.Fatal("Open accepted mode \"fast\"")
	}
	if !strings.Contains(err.Error(), `unknown WireGuard mode "fast"`) {
		t.Errorf("error %q does not name the bad mode", err)
	}
	if _, err := net.InterfaceByName(name); err == nil {
		t.Errorf("interface %s exists after a refused Open", name)
	}
}
