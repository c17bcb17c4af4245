package platform

import (
	"context"
	"log/slog"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/netlab"
)

// TestNetWatcherInNamespace runs the netlink watcher in a lab host's namespace, as weftd
// runs it in its own, and changes that host's network: changes to the ignored interface
// and lifetime refreshes call nobody; a burst of real changes calls once.
func TestNetWatcherInNamespace(t *testing.T) {
	lab := netlab.New(t, "netwatch")
	h := lab.AddHost("roamer", lab.Internet())
	// A stand-in for the tunnel (the lab kernel may lack the dummy module).
	ipIn(t, h, "link", "add", "weft0", "type", "veth", "peer", "name", "weft0p")
	ipIn(t, h, "link", "set", "weft0", "up")
	ipIn(t, h, "link", "set", "weft0p", "up")

	const quiet = 100 * time.Millisecond
	// settle is how long the test waits to see that nothing (more) is called: many
	// bursts' worth, so a call that is coming has come.
	const settle = 8 * quiet
	var calls atomic.Int32
	called := make(chan struct{}, 16)
	ready := make(chan struct{})
	w := &nlWatcher{
		cfg:        NetWatchConfig{Ignore: "weft0", Quiet: quiet, MaxDelay: 10 * quiet, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))},
		subscribed: func() { close(ready) },
	}
	ctx, cancel := context.WithCancel(context.Background())
	watchErr := make(chan error, 1)
	go func() {
		watchErr <- inNamespace(t, h.Netns(), func() error {
			return w.Watch(ctx, func() {
				calls.Add(1)
				called <- struct{}{}
			})
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-watchErr; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-watchErr:
		t.Fatalf("Watch returned before subscribing: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher did not subscribe")
	}

	expect := func(step string, want int32) {
		t.Helper()
		time.Sleep(settle)
		if got := calls.Load(); got != want {
			t.Fatalf("%s: %d calls, want %d", step, got, want)
		}
	}
	waitCall := func(step string) {
		t.Helper()
		select {
		case <-called:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no call", step)
		}
	}

	// weft's own tunnel: its address and routes are weftd's doing.
	ipIn(t, h, "addr", "add", "100.64.0.7/10", "dev", "weft0")
	ipIn(t, h, "route", "add", "198.18.0.0/15", "dev", "weft0")
	expect("address and route on the ignored interface", 0)

	// Moving: a new address, a route, and the old address gone, as one volley.
	old := h.Addr().String() + "/24"
	batch(t, h, "addr add 198.51.100.7/24 dev eth0",
		"addr add 198.51.100.8/24 dev eth0",
		"route add 192.0.2.0/24 via 198.51.100.1 dev eth0",
		"addr del "+old+" dev eth0")
	waitCall("a burst of address and route changes")
	expect("after the burst", 1)

	// A DHCP renewal or router advertisement refreshes lifetimes: an event, no change.
	ipIn(t, h, "addr", "change", "198.51.100.7/24", "dev", "eth0", "valid_lft", "300", "preferred_lft", "300")
	expect("a lifetime refresh", 1)

	ipIn(t, h, "addr", "del", "198.51.100.8/24", "dev", "eth0")
	waitCall("an address removed")
	expect("after the removal", 2)
}

// batch runs `ip -batch` lines in h's namespace in one process, so their events come
// together.
func batch(t *testing.T, h *netlab.Host, lines ...string) {
	t.Helper()
	cmd := exec.Command("ip", "-n", h.Netns(), "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v\n%s", err, out)
	}
}
