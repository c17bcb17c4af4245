package tray

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/ipc"
	"github.com/weftmesh/weft/wire"
)

// fakeAPI is weftd as the tray sees it: each Events call takes the next stream from
// streams (a closed channel ends it); calls are recorded.
type fakeAPI struct {
	streams chan chan wire.Event
	upResp  wire.Status

	mu    sync.Mutex
	calls []string
	ups   []wire.UpRequest
}

func (f *fakeAPI) Events(ctx context.Context, fn func(wire.Event) error) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case s, ok := <-f.streams:
		if !ok || s == nil {
			return fmt.Errorf("weftd is not running: %w", ipc.ErrNotRunning)
		}
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case ev, ok := <-s:
				if !ok {
					return ipc.ErrStreamEnded
				}
				fn(ev)
			}
		}
	}
}

func (f *fakeAPI) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeAPI) Up(_ context.Context, req wire.UpRequest) (wire.Status, error) {
	f.mu.Lock()
	f.ups = append(f.ups, req)
	f.mu.Unlock()
	f.record("up")
	return f.upResp, nil
}

func (f *fakeAPI) Down(context.Context) (wire.Status, error) {
	f.record("down")
	return wire.Status{}, nil
}

func (f *fakeAPI) Logout(context.Context) (wire.Status, error) {
	f.record("logout")
	return wire.Status{}, nil
}

func (f *fakeAPI) Calls() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, ",")
}

// fakeView records what was shown.
type fakeView struct {
	mu    sync.Mutex
	items []Item
	icon  string
}

func (v *fakeView) Show(items []Item, icon, _ string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.items, v.icon = items, icon
}

func (v *fakeView) label(id string) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var walk func([]Item) string
	walk = func(list []Item) string {
		for _, it := range list {
			if it.ID == id {
				if it.Hidden {
					return ""
				}
				return it.Label
			}
			if l := walk(it.Children); l != "" {
				return l
			}
		}
		return ""
	}
	return walk(v.items)
}

type fakeDesktop struct {
	mu      sync.Mutex
	opened  []string
	copied  []string
	openErr error
}

func (d *fakeDesktop) OpenURL(url string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.opened = append(d.opened, url)
	return d.openErr
}

func (d *fakeDesktop) Copy(text string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.copied = append(d.copied, text)
	return nil
}

type memSessions struct {
	mu      sync.Mutex
	deleted []string
}

func (m *memSessions) Load(string) (string, bool, error) { return "", false, nil }
func (m *memSessions) Save(string, string) error         { return nil }
func (m *memSessions) Delete(b string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deleted = append(m.deleted, b)
	return nil
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type harness struct {
	api   *fakeAPI
	view  *fakeView
	desk  *fakeDesktop
	sess  *memSessions
	app   *App
	quits chan struct{}
}

func startApp(t *testing.T, loginBroker string) *harness {
	t.Helper()
	h := &harness{api: &fakeAPI{streams: make(chan chan wire.Event)}, view: &fakeView{}, desk: &fakeDesktop{},
		sess: &memSessions{}, quits: make(chan struct{}, 1)}
	h.app = NewApp(AppConfig{API: h.api, View: h.view, Desktop: h.desk, Sessions: h.sess, LoginBroker: loginBroker,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
		Quit:   func() { h.quits <- struct{}{} }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		h.app.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return h
}

func TestAppFollowsWeftd(t *testing.T) {
	h := startApp(t, "")
	eventually(t, "reaching weftd", func() bool { return h.view.label("status") == "weft: reaching the weft service…" })
	// weftd is not running: the tray says so and keeps trying.
	h.api.streams <- nil
	eventually(t, "service not running", func() bool { return h.view.label("status") == "weft service not running" })
	stream := make(chan wire.Event)
	h.api.streams <- stream
	st := running().Status
	stream <- wire.Event{Type: wire.EventStatus, Status: &st}
	eventually(t, "connected", func() bool { return h.view.label("status") == "weft: connected to acme" })

	// Clicks run against weftd.
	h.app.Click(Disconnect{})
	eventually(t, "down called", func() bool { return h.api.Calls() == "down" })
	st.State = wire.StateStopped
	stream <- wire.Event{Type: wire.EventStatus, Status: &st}
	eventually(t, "disconnected", func() bool { return h.view.label("toggle") == "Connect" })
	h.app.Click(Connect{})
	eventually(t, "up called", func() bool { return h.api.Calls() == "down,up" })

	h.app.Click(Copy{Text: "100.64.0.2"})
	eventually(t, "copied", func() bool { return h.view.label("notice") == "Copied 100.64.0.2" })

	h.app.Click(LogOut{})
	eventually(t, "logout", func() bool { return h.api.Calls() == "down,up,logout" })
	eventually(t, "session forgotten", func() bool {
		h.sess.mu.Lock()
		defer h.sess.mu.Unlock()
		return len(h.sess.deleted) == 1 && h.sess.deleted[0] == "https://broker.test"
	})

	// weftd restarts: the stream ends, the tray shows it and comes back.
	close(stream)
	h.api.streams <- nil
	eventually(t, "service not running after restart", func() bool { return h.view.label("status") == "weft service not running" })
	stream = make(chan wire.Event)
	h.api.streams <- stream
	stream <- wire.Event{Type: wire.EventStatus, Status: &st}
	eventually(t, "back", func() bool { return h.view.label("status") == "weft: disconnected" })

	h.app.Click(Quit{})
	select {
	case <-h.quits:
	case <-time.After(10 * time.Second):
		t.Fatal("quit not called")
	}
}

func TestAppLogIn(t *testing.T) {
	h := startApp(t, "https://b.test")
	h.api.upResp = wire.Status{State: wire.StateNeedsLogin, LoginURL: "https://b.test/login/abc"}
	h.desk.openErr = errors.New("no browser")
	stream := make(chan wire.Event)
	h.api.streams <- stream
	stream <- wire.Event{Type: wire.EventStatus, Status: &wire.Status{State: wire.StateNeedsLogin}}
	eventually(t, "log in item", func() bool { return h.view.label("login") == "Log in…" })

	h.app.Click(LogIn{})
	eventually(t, "login page opened", func() bool {
		h.desk.mu.Lock()
		defer h.desk.mu.Unlock()
		return len(h.desk.opened) == 1 && h.desk.opened[0] == "https://b.test/login/abc"
	})
	// weftd knew no broker, so the tray's --broker was asked for.
	h.api.mu.Lock()
	req := h.api.ups[0]
	h.api.mu.Unlock()
	if req.Broker != "https://b.test" {
		t.Fatalf("up asked for broker %q", req.Broker)
	}
	// No browser: the address goes to the clipboard and the menu says so.
	eventually(t, "clipboard fallback", func() bool {
		return strings.Contains(h.view.label("notice"), "login address is on the clipboard")
	})
	h.desk.mu.Lock()
	copied := strings.Join(h.desk.copied, ",")
	h.desk.mu.Unlock()
	if copied != "https://b.test/login/abc" {
		t.Fatalf("copied %q", copied)
	}
	// Only https pages are opened.
	h.app.Click(OpenURL{URL: "file:///etc/passwd"})
	eventually(t, "refused", func() bool { return strings.HasPrefix(h.view.label("notice"), "Not opening file:") })
}
