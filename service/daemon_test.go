package service

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/ipc"
	"github.com/weftmesh/weft/mesh"
	"github.com/weftmesh/weft/mesh/control/controltest"
	"github.com/weftmesh/weft/platform"
	"github.com/weftmesh/weft/wire"
)

// fakeEngine records what the daemon asks of the data plane.
type fakeEngine struct {
	cfg mesh.Config

	mu     sync.Mutex
	peers  []mesh.Peer
	closed bool
}

func (e *fakeEngine) SetPeers(p []mesh.Peer) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("closed")
	}
	e.peers = slices.Clone(p)
	return nil
}

func (e *fakeEngine) Stats() (map[wire.Key]mesh.PeerStats, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[wire.Key]mesh.PeerStats{}
	for _, p := range e.peers {
		out[p.PublicKey] = mesh.PeerStats{Endpoint: p.Endpoint, LastHandshake: time.Now().Add(-10 * time.Second), RxBytes: 100}
	}
	return out, nil
}

func (e *fakeEngine) ListenPort() int       { return 51820 }
func (e *fakeEngine) InterfaceName() string { return e.cfg.TUNName }
func (e *fakeEngine) Kind() string          { return mesh.KindUserspace }

func (e *fakeEngine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	return nil
}

func (e *fakeEngine) state() (keys []wire.Key, closed bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.peers {
		keys = append(keys, p.PublicKey)
	}
	return keys, e.closed
}

// fakeFirewall records the filters the daemon enforces.
type fakeFirewall struct {
	mu         sync.Mutex
	applied    []wire.PacketFilter
	forwarding []platform.Forwarding // SetForwarding calls (gateway_test.go)
	closed     bool
}

func (f *fakeFirewall) SetForwarding(fwd platform.Forwarding) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errors.New("firewall closed")
	}
	f.forwarding = append(f.forwarding, fwd)
	return nil
}

func (f *fakeFirewall) Apply(iface string, self netip.Addr, filter wire.PacketFilter) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errors.New("firewall closed")
	}
	f.applied = append(f.applied, filter)
	return nil
}

func (f *fakeFirewall) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

// last is the filter in force (ok false if none was applied) and whether it was closed.
func (f *fakeFirewall) last() (filter wire.PacketFilter, ok, closed bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.applied) == 0 {
		return wire.PacketFilter{}, false, f.closed
	}
	return f.applied[len(f.applied)-1], true, f.closed
}

// fakeHostNets are the addresses a test daemon's host has: a LAN, a second network and
// the tunnel's.
var fakeHostNets = []netip.Prefix{netip.MustParsePrefix("192.168.1.2/24"), netip.MustParsePrefix("10.0.0.2/8"),
	netip.MustParsePrefix("100.64.0.1/10")}

// harness runs a Daemon on a temporary state dir and socket with fake engines.
type harness struct {
	t         *testing.T
	dir       string
	client    *ipc.Client
	d         *Daemon
	stop      context.CancelFunc
	served    chan error
	mu        sync.Mutex
	engines   []*fakeEngine
	firewalls []*fakeFirewall
	net       osLog // routes and gateway rules asked for (netconfig_test.go)
}

func startDaemon(t *testing.T, dir string) *harness {
	t.Helper()
	return startDaemonWith(t, dir, nil)
}

// startDaemonWith is startDaemon with the configuration changed by edit first.
func startDaemonWith(t *testing.T, dir string, edit func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, dir: dir}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := Config{StateDir: dir, TUNName: "weft-test", Logger: log, NewEngine: func(c mesh.Config) (Engine, error) {
		e := &fakeEngine{cfg: c}
		h.mu.Lock()
		h.engines = append(h.engines, e)
		h.mu.Unlock()
		return e, nil
	}, NewFirewall: func(*slog.Logger) (platform.Firewall, error) {
		f := &fakeFirewall{}
		h.mu.Lock()
		h.firewalls = append(h.firewalls, f)
		h.mu.Unlock()
		return f, nil
	}, NewRouter: func(*slog.Logger) (platform.Router, error) {
		return fakeRouter{&h.net}, h.net.add("new router")
	}, NewGateway: func(*slog.Logger) (platform.Gateway, error) {
		return fakeGateway{&h.net}, h.net.add("new gateway")
	}, NewNetWatcher: func(platform.NetWatchConfig) platform.NetWatcher {
		return newFakeWatcher() // the test host's own network changes are not the test's
	}, LocalPrefixes: func() []netip.Prefix {
		return slices.Clone(fakeHostNets) // nor are its addresses
	}}
	if edit != nil {
		edit(&cfg)
	}
	d, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "weftd.sock")
	ln, err := ipc.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.d, h.stop, h.served, h.client = d, cancel, make(chan error, 1), &ipc.Client{Path: sock}
	go func() { h.served <- d.Serve(ctx, ln) }()
	t.Cleanup(h.shutdown)
	return h
}

func (h *harness) shutdown() {
	if h.stop == nil {
		return
	}
	h.stop()
	h.stop = nil
	if err := <-h.served; err != nil {
		h.t.Errorf("Serve: %v", err)
	}
}

func (h *harness) engine() *fakeEngine {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.engines) == 0 {
		return nil
	}
	return h.engines[len(h.engines)-1]
}

func (h *harness) firewall() *fakeFirewall {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.firewalls) == 0 {
		return nil
	}
	return h.firewalls[len(h.firewalls)-1]
}

func (h *harness) status() wire.Status {
	h.t.Helper()
	st, err := h.client.Status(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

// waitFor polls cond until it holds; the deadline only guards against a hang.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDaemonLifecycle(t *testing.T) {
	b := controltest.NewBroker(t)
	alpha := dev(t, "p1", "alpha", "100.64.0.50", "198.51.100.50:51820")
	bravo := dev(t, "p2", "bravo", "100.64.0.51", "198.51.100.51:51820")
	deltas := make(chan wire.MapUpdate)
	b.OnStream(func(n int, s *controltest.Stream) {
		s.Send(wire.MapUpdate{Full: true, Self: &s.Device, Peers: []wire.Device{alpha}})
		for {
			select {
			case u := <-deltas:
				s.Send(u)
			case <-s.Done():
				return
			}
		}
	})
	dir := t.TempDir()
	h := startDaemon(t, dir)
	ctx := context.Background()

	if st := h.status(); st.State != wire.StateNeedsLogin {
		t.Fatalf("fresh daemon state %q", st.State)
	}
	// Bad input changes nothing.
	if _, err := h.client.Up(ctx, wire.UpRequest{Broker: b.URL, CAPEM: b.CAPEM}); err == nil {
		t.Fatal("up without credentials succeeded")
	}
	if _, err := h.client.Up(ctx, wire.UpRequest{Broker: b.URL, CAPEM: b.CAPEM, AuthKey: "wrong"}); err == nil {
		t.Fatal("up with a refused auth key succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, stateFile)); !errors.Is(err, os.ErrNotExist) || h.engine() != nil {
		t.Fatalf("failed ups left state behind (stat: %v) or started an engine", err)
	}

	st, err := h.client.Up(ctx, wire.UpRequest{Broker: b.URL, CAPEM: b.CAPEM, AuthKey: controltest.GoodAuthKey, Name: "laptop"})
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	if st.Self == nil || st.Self.Name != "laptop" {
		t.Fatalf("up returned %+v", st)
	}
	eng := h.engine()
	if eng == nil || eng.cfg.Address != netip.PrefixFrom(st.Self.Address, 10) || eng.cfg.TUNName != "weft-test" {
		t.Fatalf("engine config %+v", eng)
	}
	waitFor(t, "alpha configured", func() bool {
		keys, _ := eng.state()
		return slices.Equal(keys, []wire.Key{alpha.PublicKey})
	})
	waitFor(t, "status running", func() bool { return h.status().State == wire.StateRunning })
	st = h.status()
	if len(st.Peers) != 1 || st.Peers[0].Name != "alpha" || !st.Peers[0].Connected || st.Peers[0].Endpoint != alpha.Endpoints[0] {
		t.Fatalf("status peers %+v", st.Peers)
	}
	if st.Interface != "weft-test" || st.WireGuard != mesh.KindUserspace {
		t.Errorf("status tunnel %q, WireGuard %q; want weft-test, %s", st.Interface, st.WireGuard, mesh.KindUserspace)
	}
	waitFor(t, "endpoints reported", func() bool { return len(b.Endpoints()) > 0 })

	// A delta adds bravo and removes alpha.
	deltas <- wire.MapUpdate{Peers: []wire.Device{bravo}, Removed: []string{"p1"}}
	waitFor(t, "bravo replaces alpha", func() bool {
		keys, _ := eng.state()
		return slices.Equal(keys, []wire.Key{bravo.PublicKey})
	})
	// The map reaches state.json (writes are coalesced, so wait for it).
	store, _ := OpenStore(dir)
	waitFor(t, "map saved", func() bool {
		s, _, err := store.Load()
		return err == nil && len(s.Map.Peers) == 1 && s.Map.Peers[0].ID == "p2"
	})

	// Down closes the engine and is remembered; up brings it back without credentials.
	if st, err := h.client.Down(ctx); err != nil || st.State != wire.StateStopped {
		t.Fatalf("down: %v, %+v", err, st)
	}
	if _, closed := eng.state(); !closed {
		t.Fatal("down left the engine open")
	}
	if s, _, _ := store.Load(); s.WantedUp {
		t.Fatal("down not saved")
	}
	if _, err := h.client.Up(ctx, wire.UpRequest{}); err != nil {
		t.Fatalf("up after down: %v", err)
	}
	eng = h.engine()
	waitFor(t, "second stream", func() bool { return b.Streams() >= 2 })

	// The broker removes the device.
	deltas <- wire.MapUpdate{Revoked: "removed by admin alice"}
	waitFor(t, "revoked", func() bool { return h.status().State == wire.StateRevoked })
	if st := h.status(); st.Reason != "removed by admin alice" || len(st.Peers) != 0 {
		t.Fatalf("revoked status %+v", st)
	}
	if _, closed := eng.state(); !closed {
		t.Fatal("revocation left the engine open")
	}
	h.shutdown()

	// After a restart, status still says why.
	h2 := startDaemon(t, dir)
	if st := h2.status(); st.State != wire.StateRevoked || st.Reason != "removed by admin alice" {
		t.Fatalf("after restart: %+v", st)
	}
	if h2.engine() != nil {
		t.Fatal("a revoked device brought its tunnel up on restart")
	}
}

func TestDaemonRestartUsesSavedMap(t *testing.T) {
	b := controltest.NewBroker(t)
	dir := t.TempDir()
	h := startDaemon(t, dir)
	peer := dev(t, "p1", "alpha", "100.64.0.50", "198.51.100.50:51820")
	b.OnStream(func(n int, s *controltest.Stream) {
		s.Send(wire.MapUpdate{Full: true, Peers: []wire.Device{peer}})
		<-s.Done()
	})
	if _, err := h.client.Up(context.Background(), wire.UpRequest{Broker: b.URL, CAPEM: b.CAPEM, AuthKey: controltest.GoodAuthKey}); err != nil {
		t.Fatal(err)
	}
	store, _ := OpenStore(dir)
	waitFor(t, "map saved", func() bool {
		s, _, err := store.Load()
		return err == nil && s.Map.Complete && len(s.Map.Peers) == 1
	})
	h.shutdown()

	// The broker is gone; the tunnel must still come up with the saved peer.
	b.Close()
	h2 := startDaemon(t, dir)
	st := h2.status() // the API answers only once startup is done
	eng := h2.engine()
	if eng == nil {
		t.Fatal("no engine after restart")
	}
	if keys, _ := eng.state(); !slices.Equal(keys, []wire.Key{peer.PublicKey}) {
		t.Fatalf("engine peers after restart: %v", keys)
	}
	if st.State != wire.StateRunning || st.BrokerConnected {
		t.Fatalf("status without broker: %+v", st)
	}

	// Logout needs the broker: it fails and changes nothing.
	keyBefore, _, _ := store.LoadKey()
	if _, err := h2.client.Logout(context.Background()); err == nil {
		t.Fatal("logout with the broker down succeeded")
	}
	if k, _, _ := store.LoadKey(); k != keyBefore {
		t.Fatal("failed logout changed the key")
	}
	if st := h2.status(); st.State != wire.StateRunning {
		t.Fatalf("after failed logout: %q", st.State)
	}
}

func TestDaemonLogout(t *testing.T) {
	b := controltest.NewBroker(t)
	dir := t.TempDir()
	h := startDaemon(t, dir)
	ctx := context.Background()
	if _, err := h.client.Logout(ctx); err == nil {
		t.Fatal("logout while not logged in succeeded")
	}
	st, err := h.client.Up(ctx, wire.UpRequest{Broker: b.URL, CAPEM: b.CAPEM, AuthKey: controltest.GoodAuthKey})
	if err != nil {
		t.Fatal(err)
	}
	store, _ := OpenStore(dir)
	keyBefore, _, _ := store.LoadKey()
	if st.Self.PublicKey != keyBefore.Public() {
		t.Fatal("registered key is not the stored one")
	}
	st, err = h.client.Logout(ctx)
	if err != nil || st.State != wire.StateNeedsLogin {
		t.Fatalf("logout: %v, %+v", err, st)
	}
	if out := b.LoggedOut(); len(out) != 1 || out[0] != keyBefore.Public() {
		t.Fatalf("broker saw logouts %v", out)
	}
	if _, ok, _ := store.Load(); ok {
		t.Fatal("state.json survived logout")
	}
	if k, ok, _ := store.LoadKey(); !ok || k == keyBefore {
		t.Fatal("logout kept the old key")
	}
	if _, closed := h.engine().state(); !closed {
		t.Fatal("logout left the engine open")
	}
}

// TestDaemonFirewallFailsClosed: the filter from the map is enforced before peers are
// configured, a new one replaces it, and after a restart without the broker the last known
// filter is back in force; a device that never had one denies everything.
func TestDaemonFirewallFailsClosed(t *testing.T) {
	b := controltest.NewBroker(t)
	dir := t.TempDir()
	h := startDaemon(t, dir)
	peer := dev(t, "p1", "alpha", "100.64.0.50", "198.51.100.50:51820")
	ssh := wire.PacketFilter{Rules: []wire.FilterRule{{Sources: []netip.Prefix{netip.MustParsePrefix("100.64.0.50/32")},
		Proto: wire.ProtoTCP, Ports: []wire.PortRange{{First: 22, Last: 22}}}}}
	web := ssh
	web.Rules = []wire.FilterRule{{Sources: ssh.Rules[0].Sources, Proto: wire.ProtoTCP, Ports: []wire.PortRange{{First: 80, Last: 80}}}}
	b.OnStream(func(n int, s *controltest.Stream) {
		s.Send(wire.MapUpdate{Full: true, Peers: []wire.Device{peer}, Filter: &ssh})
		s.Send(wire.MapUpdate{Filter: &web})
		<-s.Done()
	})
	if _, err := h.client.Up(context.Background(), wire.UpRequest{Broker: b.URL, CAPEM: b.CAPEM, AuthKey: controltest.GoodAuthKey}); err != nil {
		t.Fatal(err)
	}
	fw := h.firewall()
	if fw == nil {
		t.Fatal("no firewall")
	}
	fw.mu.Lock()
	first := fw.applied[0]
	fw.mu.Unlock()
	if first.DefaultAllow || len(first.Rules) != 0 {
		t.Fatalf("before any map the firewall got %+v, want deny-all", first)
	}
	waitFor(t, "web filter enforced", func() bool {
		f, ok, _ := fw.last()
		return ok && len(f.Rules) == 1 && f.Rules[0].Ports[0].First == 80
	})
	store, _ := OpenStore(dir)
	waitFor(t, "filter saved", func() bool {
		s, _, err := store.Load()
		return err == nil && s.Map.Filter != nil && len(s.Map.Filter.Rules) == 1 && s.Map.Filter.Rules[0].Ports[0].First == 80
	})
	h.shutdown()
	if _, _, closed := fw.last(); !closed {
		t.Fatal("shutdown left the firewall rules in place")
	}

	// Restart with the broker gone: the saved filter is enforced at once.
	b.Close()
	h2 := startDaemon(t, dir)
	h2.status()
	f, ok, _ := h2.firewall().last()
	if !ok || len(f.Rules) != 1 || f.Rules[0].Ports[0].First != 80 {
		t.Fatalf("after restart the firewall has %+v (applied %v), want the saved web filter", f, ok)
	}
}
