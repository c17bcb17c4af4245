package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/labrun"
	"github.com/weftmesh/weft/internal/netlab"
	"github.com/weftmesh/weft/wire"
)

// TestPortMapping: two devices behind symmetric NATs, which without help stay on the relay
// ("both symmetric" in TestNATTraversal). deva's router offers PCP and NAT-PMP (miniupnpd):
// deva maps WireGuard's port there, reports the mapping as a candidate with NAT "mapped",
// and the pair settles on a direct path to it. After deva's router is renumbered (new
// public address, NAT state lost) deva maps again at the new address and the pair is
// direct again; when deva stops, its mapping is deleted.
func TestPortMapping(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, "portmap")
	bins := labrun.Build(t)
	broker := labrun.StartBroker(t, bins, lab.AddHost("broker", lab.Internet()))
	labrun.StartRelay(t, bins, lab.AddHost("relay", lab.Internet()), broker, "lab")
	key := broker.NewAccount("acme")
	ra, lanA := lab.AddRouterWith("rdeva", lab.Internet(), netlab.RouterOptions{NAT: netlab.NATSymmetric, PortMapping: true})
	_, lanB := lab.AddRouterWith("rdevb", lab.Internet(), netlab.RouterOptions{NAT: netlab.NATSymmetric})
	a := labrun.StartDevice(t, bins, lab.AddHost("deva", lanA), "deva")
	b := labrun.StartDevice(t, bins, lab.AddHost("devb", lanB), "devb")
	a.Up(broker, key)
	b.Up(broker, key)
	selves := meshed(t, a, b)

	mappedAt := func(want string) wire.PortMapping {
		t.Helper()
		var pm wire.PortMapping
		labrun.Eventually(t, 30*time.Second, "deva maps WireGuard's port on its router at "+want, func() error {
			st, err := a.Status()
			if err != nil {
				return err
			}
			if st.PortMapping == nil || !strings.HasPrefix(st.PortMapping.External.String(), want+":") {
				return fmt.Errorf("port mapping %+v", st.PortMapping)
			}
			pm = *st.PortMapping
			return nil
		})
		return pm
	}
	pm := mappedAt(ra.Addr().String())
	if pm.Protocol != wire.PortMapPCP || pm.Internal.Port() != uint16(a.Port) || pm.Gateway != lanA.Gateway() {
		t.Errorf("port mapping %+v: want PCP from gateway %s for port %d", pm, lanA.Gateway(), a.Port)
	}
	// devb learns the mapped address and that deva's NAT lets it in there.
	labrun.Eventually(t, 30*time.Second, "devb sees deva's mapping", func() error {
		ps, err := b.Peer("deva")
		if err != nil {
			return err
		}
		if ps.NAT != wire.NATMapped || !strings.Contains(fmt.Sprint(ps.Endpoints), pm.External.String()) {
			return fmt.Errorf("deva's NAT %q, endpoints %v", ps.NAT, ps.Endpoints)
		}
		return nil
	})
	ps := settle(t, b, "deva", "direct", "")
	settle(t, a, "devb", "direct", "")
	if ps.Endpoint != pm.External {
		t.Errorf("devb reaches deva at %s, want the mapped %s", ps.Endpoint, pm.External)
	}
	t.Logf("devb → deva: %s %s rtt %s", ps.Path, ps.Endpoint, ps.RTT)

	// weft netcheck shows it.
	out, err := a.CLI("netcheck", "--json")
	if err != nil {
		t.Fatalf("netcheck: %v\n%s", err, out)
	}
	var n wire.Netcheck
	if err := json.Unmarshal([]byte(out), &n); err != nil {
		t.Fatal(err)
	}
	if n.PortMapping == nil || n.PortMapping.External != pm.External {
		t.Errorf("netcheck port mapping %+v, want %s", n.PortMapping, pm.External)
	}
	if text := a.MustCLI("netcheck"); !strings.Contains(text, "Port mapping: "+pm.External.String()+" (PCP") {
		t.Errorf("netcheck does not show the mapping:\n%s", text)
	}

	// Roaming: deva's router gets a new public address and forgets its NAT state.
	old := ra.Addr()
	now := ra.Renumber()
	t.Logf("renumbered %s: %s → %s", ra.Name(), old, now)
	labrun.Eventually(t, 30*time.Second, "deva reaches devb after roaming", func() error { return a.Ping(selves["devb"]) })
	labrun.Eventually(t, 30*time.Second, "devb reaches deva after roaming", func() error { return b.Ping(selves["deva"]) })
	pm = mappedAt(now.String())
	labrun.Eventually(t, 75*time.Second, "devb reaches deva directly at "+pm.External.String(), func() error {
		ps, err := b.Peer("deva")
		if err != nil {
			return err
		}
		if ps.Path != wire.PathDirect || ps.Endpoint != pm.External {
			return fmt.Errorf("path %q %s (%s)", ps.Path, ps.Endpoint, ps.PathReason)
		}
		return nil
	})
	settleWithin(t, 75*time.Second, a, "devb", "direct", "")

	// Stopping deletes the mapping on the router.
	a.Stop()
	if log := ra.PortMappingLog(); !strings.Contains(log, "mapping removed") {
		t.Errorf("deva stopped, but its router never removed the mapping:\n%s", log)
	}
}
