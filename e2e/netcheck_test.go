package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/labrun"
	"github.com/weftmesh/weft/internal/netlab"
	"github.com/weftmesh/weft/wire"
)

// netcheck runs `weft netcheck --json` on d once the device has the broker's STUN
// servers and relays (from its first map), and returns the report and the human one.
func netcheck(t *testing.T, d *labrun.Device) (wire.Netcheck, string) {
	t.Helper()
	var n wire.Netcheck
	labrun.Eventually(t, 30*time.Second, d.Name+": netcheck with the map's STUN servers and relays", func() error {
		out, err := d.CLI("netcheck", "--json")
		if err != nil {
			return err
		}
		n = wire.Netcheck{}
		if err := json.Unmarshal([]byte(out), &n); err != nil {
			return fmt.Errorf("not JSON: %w: %s", err, out)
		}
		if len(n.STUN) == 0 || len(n.Relays) == 0 {
			return fmt.Errorf("no STUN servers or relays yet (state %s, notes %q)", n.State, n.Notes)
		}
		return nil
	})
	human, err := d.CLI("netcheck")
	if err != nil {
		t.Fatalf("%s: weft netcheck: %v\n%s", d.Name, err, human)
	}
	t.Logf("%s:\n%s", d.Name, human)
	return n, human
}

// TestNetcheck: weft netcheck behind three kinds of network tells what a user needs to
// know there — behind a home NAT UDP works and the mapping is the same for every
// destination; behind a symmetric NAT the mapping varies; with UDP blocked UDP is
// reported blocked and the relay reachable over TLS only. With the tunnel down it checks
// from a temporary socket; a device that is not logged in says it has nothing to check
// against.
func TestNetcheck(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, "netcheck")
	bins := labrun.Build(t)
	broker := labrun.StartBroker(t, bins, lab.AddHost("broker", lab.Internet()))
	labrun.StartRelay(t, bins, lab.AddHost("relay", lab.Internet()), broker, "lab")
	key := broker.NewAccount("acme")
	behindNAT := func(name string, kind netlab.NATKind) (*labrun.Device, *netlab.Router) {
		r, lan := lab.AddRouter("r"+name, lab.Internet(), kind)
		return labrun.StartDevice(t, bins, lab.AddHost(name, lan), name), r
	}
	home, homeRouter := behindNAT("home", netlab.NATHome)
	sym, _ := behindNAT("sym", netlab.NATSymmetric)
	blocked, blockedRouter := behindNAT("blocked", netlab.NATHome)
	blockedRouter.BlockUDP()
	loner := labrun.StartDevice(t, bins, lab.AddHost("loner", lab.Internet()), "loner")
	for _, d := range []*labrun.Device{home, sym, blocked} {
		d.Up(broker, key)
	}

	t.Run("home NAT", func(t *testing.T) {
		n, human := netcheck(t, home)
		if n.UDP != wire.UDPOK || n.Socket != wire.SocketWireGuard || n.LocalPort != home.Port {
			t.Errorf("UDP %q from %q port %d, want ok from WireGuard's socket, port %d", n.UDP, n.Socket, n.LocalPort, home.Port)
		}
		for _, s := range n.STUN {
			if s.Mapped.Addr() != homeRouter.Addr() {
				t.Errorf("STUN %s saw %v (%s), want the router's address %s", s.Server, s.Mapped, s.Error, homeRouter.Addr())
			}
		}
		if n.Mapping != wire.MappingIndependent || !strings.Contains(human, "Mapping: endpoint-independent") {
			t.Errorf("mapping %q, want %q", n.Mapping, wire.MappingIndependent)
		}
		// The lab's home router keeps a free source port, as most do.
		if n.PortPreserved == nil || !*n.PortPreserved {
			t.Errorf("port preserved: %v, want yes", n.PortPreserved)
		}
		if !slices.Contains(n.LAN, home.Host.Addr()) {
			t.Errorf("LAN addresses %v lack %s", n.LAN, home.Host.Addr())
		}
		r := n.Relays[0]
		if r.Name != "lab" || r.UDP == nil || !r.UDP.OK || r.UDP.Latency <= 0 || r.TLS == nil || !r.TLS.OK || r.TLS.Latency <= 0 {
			t.Errorf("relay %+v UDP %+v TLS %+v, want lab reachable with a latency over both", r, r.UDP, r.TLS)
		}
		if n.PreferredRelay != "lab" || !strings.Contains(human, "preferred: lab") {
			t.Errorf("preferred relay %q", n.PreferredRelay)
		}
	})

	t.Run("symmetric NAT", func(t *testing.T) {
		n, human := netcheck(t, sym)
		if n.UDP != wire.UDPOK {
			t.Errorf("UDP %q, want ok", n.UDP)
		}
		if n.Mapping != wire.MappingVaries || !strings.Contains(human, "varies by destination (symmetric NAT") {
			t.Errorf("mapping %q (STUN %+v), want %q", n.Mapping, n.STUN, wire.MappingVaries)
		}
	})

	t.Run("UDP blocked", func(t *testing.T) {
		n, human := netcheck(t, blocked)
		if n.UDP != wire.UDPBlocked || !strings.Contains(human, "UDP: blocked") {
			t.Errorf("UDP %q, want blocked", n.UDP)
		}
		if n.Mapping != "" || n.PortPreserved != nil {
			t.Errorf("mapping %q / port preserved %v without a STUN answer", n.Mapping, n.PortPreserved)
		}
		for _, s := range n.STUN {
			if s.Mapped.IsValid() || s.Error == "" {
				t.Errorf("STUN %s: mapped %v error %q, want no answer", s.Server, s.Mapped, s.Error)
			}
		}
		r := n.Relays[0]
		if r.UDP == nil || r.UDP.OK || r.TLS == nil || !r.TLS.OK {
			t.Errorf("relay UDP %+v TLS %+v, want unreachable over UDP, reachable over TLS", r.UDP, r.TLS)
		}
		if n.PreferredRelay != "lab" || !strings.Contains(human, "UDP unreachable") {
			t.Errorf("preferred relay %q; human report:\n%s", n.PreferredRelay, human)
		}
	})

	t.Run("tunnel down", func(t *testing.T) {
		if out, err := home.CLI("down"); err != nil {
			t.Fatalf("weft down: %v\n%s", err, out)
		}
		n, human := netcheck(t, home)
		// No WireGuard socket to send from: a temporary one shows the NAT's behaviour.
		if n.Socket != wire.SocketProbe || !strings.Contains(human, "from a temporary socket") {
			t.Errorf("socket %q, want %q", n.Socket, wire.SocketProbe)
		}
		if n.UDP != wire.UDPOK || n.Mapping != wire.MappingIndependent || n.LocalPort == 0 {
			t.Errorf("UDP %q mapping %q port %d, want ok, %q and the socket's port", n.UDP, n.Mapping, n.LocalPort, wire.MappingIndependent)
		}
		if !slices.ContainsFunc(n.Notes, func(s string) bool { return strings.Contains(s, "the tunnel is down") }) {
			t.Errorf("notes %q do not say the tunnel is down", n.Notes)
		}
	})

	t.Run("not logged in", func(t *testing.T) {
		out, err := loner.CLI("netcheck")
		if err != nil {
			t.Fatalf("weft netcheck: %v\n%s", err, out)
		}
		if !strings.Contains(out, "not logged in: no broker") || !strings.Contains(out, loner.Host.Addr().String()) {
			t.Errorf("a device without a broker does not say why nothing was checked, or lacks its address:\n%s", out)
		}
	})
}

// TestRoamingNetlink: a device whose LAN address changes (no NAT: the laptop got a new
// lease) notices at once through the OS's change events, re-reports its endpoints, and
// its peer sees the new address in its map within seconds, and reaches it there. The lab
// has no relay, so nothing but the event (or the 5 s address check) tells weftd.
func TestRoamingNetlink(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, "ncroam")
	bins := labrun.Build(t)
	broker := labrun.StartBroker(t, bins, lab.AddHost("broker", lab.Internet()))
	key := broker.NewAccount("acme")
	a := labrun.StartDevice(t, bins, lab.AddHost("deva", lab.Internet()), "deva")
	b := labrun.StartDevice(t, bins, lab.AddHost("devb", lab.Internet()), "devb")
	a.Up(broker, key)
	b.Up(broker, key)
	selves := meshed(t, a, b)

	old := a.Host.Addr()
	// The lab hands out the internet's addresses from the bottom; this one is free.
	moved := netip.MustParseAddr("203.0.113.200")
	bits := lab.Internet().Prefix().Bits()
	for _, args := range [][]string{
		{"ip", "addr", "del", netip.PrefixFrom(old, bits).String(), "dev", "eth0"},
		{"ip", "addr", "add", netip.PrefixFrom(moved, bits).String(), "dev", "eth0"},
	} {
		if out, err := a.Host.Run(context.Background(), args...); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	start := time.Now()
	want := netip.AddrPortFrom(moved, uint16(a.Port))
	labrun.Eventually(t, 20*time.Second, "devb's map lists deva at its new address", func() error {
		p, err := b.Peer("deva")
		if err != nil {
			return err
		}
		if !slices.Contains(p.Endpoints, want) {
			return fmt.Errorf("deva's endpoints %v", p.Endpoints)
		}
		return nil
	})
	t.Logf("devb saw deva's new endpoint %s %s after the move", want, time.Since(start).Round(100*time.Millisecond))
	// Without a relay (whose socket, bound to the old address, would fail at once and
	// wake weftd too) the event is the first sign, but the periodic address check may
	// now and then see the move first: the event must come all the same.
	labrun.Eventually(t, 10*time.Second, "deva reacts to the OS's network change event", func() error {
		if !strings.Contains(a.Proc.Log(), "network change event") {
			return fmt.Errorf("no network change event in deva's log")
		}
		return nil
	})
	for _, l := range strings.Split(a.Proc.Log(), "\n") {
		if strings.Contains(l, "network change") {
			t.Log(l)
		}
	}
	labrun.Eventually(t, 30*time.Second, "devb reaches deva at its new address", func() error { return b.Ping(selves["deva"]) })
	labrun.Eventually(t, 30*time.Second, "deva reaches devb from its new address", func() error { return a.Ping(selves["devb"]) })
}
