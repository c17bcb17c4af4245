package service

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/weftmesh/weft/mesh"
	"github.com/weftmesh/weft/mesh/control/controltest"
	"github.com/weftmesh/weft/platform"
	"github.com/weftmesh/weft/wire"
)

// fakeWatcher is a platform.NetWatcher whose changes the test makes.
type fakeWatcher struct {
	changes chan struct{}
	mu      sync.Mutex
	cfg     platform.NetWatchConfig // what it was created with
}

func newFakeWatcher() *fakeWatcher { return &fakeWatcher{changes: make(chan struct{})} }

func (w *fakeWatcher) Watch(ctx context.Context, changed func()) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.changes:
			changed()
		}
	}
}

// roamEngine is a fakeEngine with the NAT traversal side, counting rebinds.
type roamEngine struct {
	*fakeEngine
	rebinds atomic.Int32
}

func (e *roamEngine) SetRelays([]wire.RelayInfo)  {}
func (e *roamEngine) Punch(wire.Key)              {}
func (e *roamEngine) Rebind()                     { e.rebinds.Add(1) }
func (e *roamEngine) Reflexive() []netip.AddrPort { return nil }
func (e *roamEngine) NAT() string                 { return wire.NATUnknown }
func (e *roamEngine) STUN(context.Context, []netip.AddrPort) ([]netip.AddrPort, error) {
	return nil, errors.New("no STUN in this test")
}

// TestNetworkChangeEvent: an OS report that the network changed makes weftd react as to a
// new public mapping — the data plane rebinds and the broker connection is made again —
// once per report, for the userspace engine and (reconnecting only) kernel WireGuard.
func TestNetworkChangeEvent(t *testing.T) {
	for _, traversal := range []bool{true, false} {
		name := "kernel"
		if traversal {
			name = "userspace"
		}
		t.Run(name, func(t *testing.T) {
			b := controltest.NewBroker(t)
			var streams atomic.Int32
			b.OnStream(func(n int, s *controltest.Stream) {
				streams.Store(int32(n))
				s.Send(wire.MapUpdate{Full: true, Self: &s.Device})
				<-s.Done()
			})
			w := newFakeWatcher()
			var created atomic.Pointer[roamEngine]
			h := startDaemonWith(t, t.TempDir(), func(c *Config) {
				c.NewNetWatcher = func(cfg platform.NetWatchConfig) platform.NetWatcher {
					w.mu.Lock()
					w.cfg = cfg
					w.mu.Unlock()
					return w
				}
				if traversal {
					plain := c.NewEngine
					c.NewEngine = func(mc mesh.Config) (Engine, error) {
						e, err := plain(mc)
						re := &roamEngine{fakeEngine: e.(*fakeEngine)}
						created.Store(re)
						return re, err
					}
				}
			})
			if _, err := h.client.Up(context.Background(), wire.UpRequest{Broker: b.URL, CAPEM: b.CAPEM, AuthKey: controltest.GoodAuthKey, Name: "laptop"}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the first map stream", func() bool { return streams.Load() == 1 })
			eng := created.Load()
			w.mu.Lock()
			ignored := w.cfg.Ignore
			w.mu.Unlock()
			if ignored != "weft-test" {
				t.Errorf("the watcher ignores %q, want the tunnel weft-test", ignored)
			}
			for i := int32(1); i <= 2; i++ {
				w.changes <- struct{}{}
				waitFor(t, "a new map stream", func() bool { return streams.Load() == i+1 })
				if eng != nil {
					waitFor(t, "a rebind", func() bool { return eng.rebinds.Load() == i })
				}
			}
			if eng != nil && eng.rebinds.Load() != 2 {
				t.Errorf("%d rebinds for 2 changes", eng.rebinds.Load())
			}
		})
	}
}
