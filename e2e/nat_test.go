package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/labrun"
	"github.com/weftmesh/weft/internal/netlab"
	"github.com/weftmesh/weft/wire"
)

// natScenario is a pair of devices placed behind some network; want is the path the
// devices must settle on ("direct" or "relay"), reason a word the relayed status must give.
type natScenario struct {
	name   string
	build  func(lab *netlab.Lab) (a, b *netlab.Host, roam *netlab.Router)
	want   string
	reason string
}

func behind(lab *netlab.Lab, name string, wan *netlab.Segment, kind netlab.NATKind) (*netlab.Host, *netlab.Router) {
	r, lan := lab.AddRouter("r"+name, wan, kind)
	return lab.AddHost(name, lan), r
}

var natScenarios = []natScenario{
	{name: "no NAT", want: "direct", build: func(lab *netlab.Lab) (*netlab.Host, *netlab.Host, *netlab.Router) {
		return lab.AddHost("deva", lab.Internet()), lab.AddHost("devb", lab.Internet()), nil
	}},
	{name: "home routers", want: "direct", build: func(lab *netlab.Lab) (*netlab.Host, *netlab.Host, *netlab.Router) {
		a, ra := behind(lab, "deva", lab.Internet(), netlab.NATHome)
		b, _ := behind(lab, "devb", lab.Internet(), netlab.NATHome)
		return a, b, ra
	}},
	{name: "no input filter", want: "direct", build: func(lab *netlab.Lab) (*netlab.Host, *netlab.Host, *netlab.Router) {
		a, ra := behind(lab, "deva", lab.Internet(), netlab.NATNoInputFilter)
		b, _ := behind(lab, "devb", lab.Internet(), netlab.NATNoInputFilter)
		return a, b, ra
	}},
	{name: "double NAT", want: "direct", build: func(lab *netlab.Lab) (*netlab.Host, *netlab.Host, *netlab.Router) {
		cgnat, isp := lab.AddRouter("cgnat", lab.Internet(), netlab.NATHome)
		a, _ := behind(lab, "deva", isp, netlab.NATHome)
		b, _ := behind(lab, "devb", lab.Internet(), netlab.NATHome)
		return a, b, cgnat
	}},
	{name: "one symmetric", want: "direct", build: func(lab *netlab.Lab) (*netlab.Host, *netlab.Host, *netlab.Router) {
		a, ra := behind(lab, "deva", lab.Internet(), netlab.NATSymmetric)
		b, _ := behind(lab, "devb", lab.Internet(), netlab.NATHome)
		return a, b, ra
	}},
	{name: "symmetric to no input filter", want: "direct", build: func(lab *netlab.Lab) (*netlab.Host, *netlab.Host, *netlab.Router) {
		a, ra := behind(lab, "deva", lab.Internet(), netlab.NATSymmetric)
		b, _ := behind(lab, "devb", lab.Internet(), netlab.NATNoInputFilter)
		return a, b, ra
	}},
	{name: "symmetric to public", want: "direct", build: func(lab *netlab.Lab) (*netlab.Host, *netlab.Host, *netlab.Router) {
		a, ra := behind(lab, "deva", lab.Internet(), netlab.NATSymmetric)
		return a, lab.AddHost("devb", lab.Internet()), ra
	}},
	{name: "both symmetric", want: "relay", reason: "symmetric", build: func(lab *netlab.Lab) (*netlab.Host, *netlab.Host, *netlab.Router) {
		a, ra := behind(lab, "deva", lab.Internet(), netlab.NATSymmetric)
		b, _ := behind(lab, "devb", lab.Internet(), netlab.NATSymmetric)
		return a, b, ra
	}},
	{name: "UDP blocked", want: "relay", reason: "UDP blocked", build: func(lab *netlab.Lab) (*netlab.Host, *netlab.Host, *netlab.Router) {
		a, ra := behind(lab, "deva", lab.Internet(), netlab.NATHome)
		ra.BlockUDP()
		b, _ := behind(lab, "devb", lab.Internet(), netlab.NATHome)
		return a, b, ra
	}},
}

// settle waits until a's status shows a path of the wanted kind to peer b and returns it.
func settle(t *testing.T, a *labrun.Device, peer, want, reason string) wire.PeerStatus {
	t.Helper()
	return settleWithin(t, 30*time.Second, a, peer, want, reason)
}

func settleWithin(t *testing.T, within time.Duration, a *labrun.Device, peer, want, reason string) wire.PeerStatus {
	t.Helper()
	var ps wire.PeerStatus
	labrun.Eventually(t, within, fmt.Sprintf("%s reaches %s %s", a.Name, peer, want), func() error {
		var err error
		if ps, err = a.Peer(peer); err != nil {
			return err
		}
		if !strings.HasPrefix(ps.Path, want) {
			return fmt.Errorf("path %q (%s)", ps.Path, ps.PathReason)
		}
		if reason != "" && !strings.Contains(ps.PathReason, reason) {
			return fmt.Errorf("relayed, but the reason is %q, want one saying %q", ps.PathReason, reason)
		}
		return nil
	})
	return ps
}

// TestNATTraversal: for each kind of network, two devices connect, on a direct path
// wherever the NATs allow one and through the relay only where they do not, and recover
// after one of them roams (its router gets a new public address, its NAT state is lost).
func TestNATTraversal(t *testing.T) {
	for i, sc := range natScenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			lab := netlab.New(t, fmt.Sprintf("nat%d", i))
			bins := labrun.Build(t)
			broker := labrun.StartBroker(t, bins, lab.AddHost("broker", lab.Internet()))
			labrun.StartRelay(t, bins, lab.AddHost("relay", lab.Internet()), broker, "lab")
			key := broker.NewAccount("acme")
			ha, hb, roam := sc.build(lab)
			a := labrun.StartDevice(t, bins, ha, "deva")
			b := labrun.StartDevice(t, bins, hb, "devb")
			a.Up(broker, key)
			b.Up(broker, key)
			selves := meshed(t, a, b)
			ps := settle(t, a, "devb", sc.want, sc.reason)
			// The reason is checked on deva's side, the one behind the scenario's network.
			settle(t, b, "deva", sc.want, "")
			t.Logf("deva → devb: %s %s rtt %s %s", ps.Path, ps.Endpoint, ps.RTT, ps.PathReason)
			if roam == nil {
				return
			}
			old := roam.Addr()
			now := roam.Renumber()
			t.Logf("roamed %s: %s → %s", roam.Name(), old, now)
			labrun.Eventually(t, 30*time.Second, "deva reaches devb after roaming", func() error { return a.Ping(selves["devb"]) })
			labrun.Eventually(t, 30*time.Second, "devb reaches deva after roaming", func() error { return b.Ping(selves["deva"]) })
			// Back on the path the NATs allow. Behind routers without an input filter the
			// first packets after the move leave a conntrack entry on the peer's router that
			// would clash; recovery waits for it to expire (30 s of silence), on the relay.
			settleWithin(t, 75*time.Second, a, "devb", sc.want, sc.reason)
		})
	}
}
