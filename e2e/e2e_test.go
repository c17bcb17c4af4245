// Package e2e runs weft's real binaries in network namespaces (the network lab) as root.
package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/labrun"
	"github.com/weftmesh/weft/internal/netlab"
	"github.com/weftmesh/weft/wire"
)

// meshed waits until every device lists every other one as a peer and can ping it
// through the tunnel.
func meshed(t *testing.T, devs ...*labrun.Device) map[string]wire.Device {
	t.Helper()
	selves := map[string]wire.Device{}
	for _, d := range devs {
		selves[d.Name] = d.Self()
	}
	for _, d := range devs {
		for _, o := range devs {
			if o == d {
				continue
			}
			peer := selves[o.Name]
			labrun.Eventually(t, 20*time.Second, fmt.Sprintf("%s pings %s (%s)", d.Name, o.Name, peer.Address), func() error {
				return d.Ping(peer)
			})
		}
	}
	return selves
}

var meshRange = netip.MustParsePrefix("100.64.0.0/10")

func peerNames(st wire.Status) []string {
	var names []string
	for _, p := range st.Peers {
		names = append(names, p.Name)
	}
	return names
}

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("e2e: skipping: the network lab needs root (network namespaces); run as root, CI does")
	}
	os.Exit(m.Run())
}

// TestFlatMeshLifecycle: three devices on one network mesh; the broker going away leaves
// tunnels working; a restarted broker keeps addresses; a removed device is cut off and told why.
func TestFlatMeshLifecycle(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, "flat")
	bins := labrun.Build(t)
	broker := labrun.StartBroker(t, bins, lab.AddHost("broker", lab.Internet()))
	key := broker.NewAccount("acme")

	var devs []*labrun.Device
	for _, name := range []string{"dev1", "dev2", "dev3"} {
		d := labrun.StartDevice(t, bins, lab.AddHost(name, lab.Internet()), name)
		d.Up(broker, key)
		devs = append(devs, d)
	}
	before := meshed(t, devs...)
	for name, self := range before {
		if !meshRange.Contains(self.Address) {
			t.Errorf("%s got %s, outside 100.64.0.0/10", name, self.Address)
		}
	}
	if before["dev1"].Address == before["dev2"].Address || before["dev2"].Address == before["dev3"].Address || before["dev1"].Address == before["dev3"].Address {
		t.Fatalf("duplicate addresses: %v", before)
	}
	out, err := devs[0].CLI("ping", "dev2", "-c", "2")
	if err != nil || !strings.Contains(out, before["dev2"].Address.String()) {
		t.Fatalf("weft ping dev2: %v\n%s", err, out)
	}

	t.Run("broker down, tunnels stay", func(t *testing.T) {
		broker.Stop()
		labrun.Eventually(t, 20*time.Second, "dev1 notices the broker is gone", func() error {
			if devs[0].MustStatus().BrokerConnected {
				return fmt.Errorf("still says connected")
			}
			return nil
		})
		for _, d := range devs[1:] {
			if err := devs[0].Ping(before[d.Name]); err != nil {
				t.Fatalf("dev1 → %s with the broker down: %v", d.Name, err)
			}
		}
		// weftd restarting while the broker is down comes back with its saved map.
		devs[2].Stop()
		devs[2].Start()
		labrun.Eventually(t, 20*time.Second, "restarted dev3 reaches dev1 from its saved map", func() error {
			return devs[2].Ping(before["dev1"])
		})
	})

	t.Run("broker restart keeps addresses", func(t *testing.T) {
		broker.Start()
		for _, d := range devs {
			labrun.Eventually(t, 30*time.Second, d.Name+" reconnects to the broker", func() error {
				st := d.MustStatus()
				if !st.BrokerConnected {
					return fmt.Errorf("not connected: %s", st.BrokerError)
				}
				if st.Self.Address != before[d.Name].Address {
					t.Fatalf("%s: address changed across broker restart: %s → %s", d.Name, before[d.Name].Address, st.Self.Address)
				}
				return nil
			})
		}
		meshed(t, devs...)
	})

	t.Run("removed device is cut off", func(t *testing.T) {
		broker.MustAdmin("device", "remove", "acme", "dev3")
		start := time.Now()
		for _, d := range devs[:2] {
			labrun.Eventually(t, 10*time.Second, d.Name+" drops dev3", func() error {
				if names := peerNames(d.MustStatus()); contains(names, "dev3") {
					return fmt.Errorf("peers still %v", names)
				}
				if d.Ping(before["dev3"]) == nil {
					return fmt.Errorf("dev3 still answers pings")
				}
				return nil
			})
		}
		t.Logf("removal cut dev3 off within %s", time.Since(start))
		labrun.Eventually(t, 10*time.Second, "dev3 says it was removed", func() error {
			st := devs[2].MustStatus()
			if st.State != wire.StateRevoked || !strings.Contains(st.Reason, "removed") {
				return fmt.Errorf("state %q reason %q", st.State, st.Reason)
			}
			return nil
		})
		out, _ := devs[2].CLI("status")
		if !strings.Contains(out, "removed") {
			t.Errorf("weft status on a removed device does not say why:\n%s", out)
		}
		// The survivors still reach each other.
		if err := devs[0].Ping(before["dev2"]); err != nil {
			t.Errorf("dev1 → dev2 after removing dev3: %v", err)
		}
	})
}

// TestReinstallKeepsAddress: a device whose state is wiped (a reinstall: new key) and that
// registers under the same name gets its old address back, and the old key stops working.
func TestReinstallKeepsAddress(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, "reinst")
	bins := labrun.Build(t)
	broker := labrun.StartBroker(t, bins, lab.AddHost("broker", lab.Internet()))
	key := broker.NewAccount("home")
	a := labrun.StartDevice(t, bins, lab.AddHost("laptop", lab.Internet()), "laptop")
	b := labrun.StartDevice(t, bins, lab.AddHost("nas", lab.Internet()), "nas")
	a.Up(broker, key)
	b.Up(broker, key)
	before := meshed(t, a, b)

	b.Stop()
	if err := os.RemoveAll(b.State); err != nil {
		t.Fatal(err)
	}
	b.Start()
	if st := b.MustStatus(); st.State != wire.StateNeedsLogin {
		t.Fatalf("wiped device is in state %q, want %q", st.State, wire.StateNeedsLogin)
	}
	b.Up(broker, key)
	after := meshed(t, a, b)
	if after["nas"].Address != before["nas"].Address {
		t.Fatalf("reinstall changed the address: %s → %s", before["nas"].Address, after["nas"].Address)
	}
	if after["nas"].PublicKey == before["nas"].PublicKey {
		t.Fatalf("reinstall kept the old key; the test did not reinstall")
	}
	labrun.Eventually(t, 10*time.Second, "laptop sees nas's new key", func() error {
		for _, p := range a.MustStatus().Peers {
			if p.Name == "nas" && p.PublicKey == after["nas"].PublicKey {
				return nil
			}
		}
		return fmt.Errorf("laptop's map still has the old key")
	})
	out, _ := broker.Admin("device", "list", "home")
	if strings.Count(out, "nas") != 1 {
		t.Errorf("device list should show nas once:\n%s", out)
	}
}

// TestHomeNAT: two devices, each behind a typical home router, mesh through their
// routers' public addresses.
func TestHomeNAT(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, "homenat")
	bins := labrun.Build(t)
	broker := labrun.StartBroker(t, bins, lab.AddHost("broker", lab.Internet()))
	key := broker.NewAccount("acme")
	_, lanA := lab.AddRouter("routera", lab.Internet(), netlab.NATHome)
	_, lanB := lab.AddRouter("routerb", lab.Internet(), netlab.NATHome)
	a := labrun.StartDevice(t, bins, lab.AddHost("deva", lanA), "deva")
	b := labrun.StartDevice(t, bins, lab.AddHost("devb", lanB), "devb")
	a.Up(broker, key)
	b.Up(broker, key)
	meshed(t, a, b)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
