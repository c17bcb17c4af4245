package service

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/ipc"
	"github.com/weftmesh/weft/mesh/control/controltest"
	"github.com/weftmesh/weft/wire"
)

// follow collects a daemon's events until the test ends; the returned channel gets the
// stream's end.
func follow(t *testing.T, c *ipc.Client) (<-chan wire.Event, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	events, ended := make(chan wire.Event, 100), make(chan error, 1)
	connected := make(chan struct{})
	var once sync.Once
	go func() {
		ended <- c.Events(ctx, func(ev wire.Event) error {
			events <- ev
			once.Do(func() { close(connected) })
			return nil
		})
	}()
	// Wait for the stream's first event (the status as it is): a change made after
	// follow returns is then sure to arrive as an event of its own.
	select {
	case <-connected:
	case err := <-ended:
		t.Fatalf("event stream ended before its first event: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("event stream sent no first event")
	}
	return events, ended
}

// nextEvent waits for an event that satisfies match, skipping others.
func nextEvent(t *testing.T, events <-chan wire.Event, what string, match func(wire.Event) bool) wire.Event {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Status == nil {
				t.Fatalf("event without a status: %+v", ev)
			}
			if match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no event: %s", what)
		}
	}
}

func TestEventStream(t *testing.T) {
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
	h := startDaemon(t, t.TempDir())
	events, ended := follow(t, h.client)

	first := nextEvent(t, events, "first", func(wire.Event) bool { return true })
	if first.Type != wire.EventStatus || first.Status.State != wire.StateNeedsLogin {
		t.Fatalf("first event %+v", first)
	}
	if _, err := h.client.Up(context.Background(), wire.UpRequest{Broker: b.URL, CAPEM: b.CAPEM, AuthKey: controltest.GoodAuthKey, Name: "laptop"}); err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, events, "running with alpha", func(ev wire.Event) bool {
		return ev.Status.State == wire.StateRunning && len(ev.Status.Peers) == 1
	})
	if ev.Status.Self == nil || ev.Status.Self.Name != "laptop" || ev.Status.Peers[0].Name != "alpha" {
		t.Fatalf("running event %+v", ev.Status)
	}

	deltas <- wire.MapUpdate{Peers: []wire.Device{bravo}}
	ev = nextEvent(t, events, "bravo added", func(ev wire.Event) bool { return len(ev.Status.Peers) == 2 })
	if ev.Type != wire.EventPeers {
		t.Fatalf("a new peer came as a %q event", ev.Type)
	}

	if _, err := h.client.Down(context.Background()); err != nil {
		t.Fatal(err)
	}
	ev = nextEvent(t, events, "stopped", func(ev wire.Event) bool { return ev.Status.State == wire.StateStopped })
	if ev.Type != wire.EventStatus {
		t.Fatalf("down came as a %q event", ev.Type)
	}

	// The daemon stopping ends the stream (and does not wait for it).
	h.shutdown()
	select {
	case err := <-ended:
		if !errors.Is(err, ipc.ErrStreamEnded) {
			t.Fatalf("stream ended with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the stream outlived the daemon")
	}
	if err := h.client.Events(context.Background(), func(wire.Event) error { return nil }); !errors.Is(err, ipc.ErrNotRunning) {
		t.Fatalf("events with no daemon: %v", err)
	}
}

func TestEventTypes(t *testing.T) {
	base := wire.Status{State: wire.StateRunning, Peers: []wire.PeerStatus{{
		Device:   wire.Device{ID: "p1", Name: "alpha", Address: netip.MustParseAddr("100.64.0.5"), Online: true},
		Endpoint: netip.MustParseAddrPort("192.0.2.1:51820"), Connected: true, RxBytes: 10, LastHandshake: time.Unix(100, 0),
	}}}
	clone := func(f func(*wire.Status)) wire.Status {
		s := base
		s.Peers = append([]wire.PeerStatus(nil), base.Peers...)
		f(&s)
		return s
	}
	cases := []struct {
		name string
		st   wire.Status
		want string
	}{
		{"counters only", clone(func(s *wire.Status) { s.Peers[0].RxBytes, s.Peers[0].LastHandshake = 99, time.Unix(200, 0) }), ""},
		{"path moved", clone(func(s *wire.Status) { s.Peers[0].Endpoint = netip.MustParseAddrPort("198.51.100.7:4000") }), wire.EventPeers},
		{"peer offline", clone(func(s *wire.Status) { s.Peers[0].Online = false }), wire.EventPeers},
		{"peer gone", clone(func(s *wire.Status) { s.Peers = nil }), wire.EventPeers},
		{"broker lost", clone(func(s *wire.Status) { s.BrokerError = "timeout" }), wire.EventStatus},
		{"stopped", clone(func(s *wire.Status) { s.State = wire.StateStopped }), wire.EventStatus},
		{"login", clone(func(s *wire.Status) { s.LoginURL = "https://b/login/x" }), wire.EventLogin},
		{"login and state", clone(func(s *wire.Status) { s.State, s.LoginError = wire.StateNeedsLogin, "expired" }), wire.EventLogin},
	}
	for _, c := range cases {
		if got := eventType(viewOf(base), viewOf(c.st)); got != c.want {
			t.Errorf("%s: event %q, want %q", c.name, got, c.want)
		}
	}
}

func TestNotifier(t *testing.T) {
	var n notifier
	c1, s1 := n.watch()
	c2, _ := n.watch()
	if c1 != c2 {
		t.Fatal("two watchers before a change got different channels")
	}
	n.notify()
	for _, c := range []<-chan struct{}{c1, c2} {
		select {
		case <-c:
		default:
			t.Fatal("notify did not wake a watcher")
		}
	}
	c3, _ := n.watch()
	select {
	case <-c3:
		t.Fatal("a watch after the change saw it again")
	default:
	}
	n.stop()
	n.stop()
	if _, s := n.watch(); s != s1 {
		t.Fatal("stopped channel changed")
	}
	select {
	case <-s1:
	default:
		t.Fatal("stop did not end watchers")
	}
}

func TestEventsEndpointRefusals(t *testing.T) {
	d := &recordingBackend{}
	h := NewHandler(d, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if rec := do(h, "POST", wire.LocalPathEvents, ""); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST events: %d", rec.Code)
	}
	if rec := do(h, "GET", wire.LocalPathEvents, ""); rec.Code != http.StatusNotImplemented {
		t.Errorf("events from a backend without them: %d", rec.Code)
	}
	srcs := &eventBackend{recordingBackend: d}
	srcs.n.stop()
	h = NewHandler(srcs, nil)
	if rec := do(h, "GET", wire.LocalPathEvents, "{junk"); rec.Code != http.StatusBadRequest {
		t.Errorf("events with a junk body: %d", rec.Code)
	}
	// A stopped source still sends the current status, then ends.
	rec := do(h, "GET", wire.LocalPathEvents, "")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/x-ndjson" || rec.Body.String() == "" {
		t.Errorf("events: %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
}

type eventBackend struct {
	*recordingBackend
	n notifier
}

func (b *eventBackend) watch() (changed, stopped <-chan struct{}) { return b.n.watch() }
