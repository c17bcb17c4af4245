package service

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftmesh/weft/ipc"
	"github.com/weftmesh/weft/mesh/control/controltest"
	"github.com/weftmesh/weft/wire"
)

func TestBrowserLoginRegisters(t *testing.T) {
	b := controltest.NewBroker(t)
	b.EnableLogin()
	dir := t.TempDir()
	h := startDaemon(t, dir)
	events, _ := follow(t, h.client)
	ctx := context.Background()

	st, err := h.client.Up(ctx, wire.UpRequest{Broker: b.URL, CAPEM: b.CAPEM, Name: "laptop"})
	if err != nil {
		t.Fatalf("up without credentials: %v", err)
	}
	logins := b.Logins()
	if st.State != wire.StateNeedsLogin || len(logins) != 1 || st.LoginURL != logins[0] {
		t.Fatalf("up answered %+v; broker has logins %v", st, logins)
	}
	ev := nextEvent(t, events, "login event", func(ev wire.Event) bool { return ev.Type == wire.EventLogin })
	if ev.LoginURL != logins[0] {
		t.Fatalf("login event %+v", ev)
	}
	// Asking again (the tray after the CLI) shows the same login, not a second one.
	if st, err := h.client.Up(ctx, wire.UpRequest{Broker: b.URL, CAPEM: b.CAPEM, Name: "laptop"}); err != nil || st.LoginURL != logins[0] || len(b.Logins()) != 1 {
		t.Fatalf("second up: %v, %+v, logins %v", err, st, b.Logins())
	}
	if _, err := os.Stat(filepath.Join(dir, stateFile)); !errors.Is(err, os.ErrNotExist) || h.engine() != nil {
		t.Fatal("a pending login saved state or started the tunnel")
	}

	if err := b.CompleteLogin(logins[0]); err != nil {
		t.Fatal(err)
	}
	ev = nextEvent(t, events, "running", func(ev wire.Event) bool { return ev.Status.State == wire.StateRunning })
	if ev.Status.Self == nil || ev.Status.Self.Name != "laptop" || ev.Status.LoginURL != "" || ev.Status.LoginError != "" {
		t.Fatalf("after sign-in: %+v", ev.Status)
	}
	store, _ := OpenStore(dir)
	if s, ok, err := store.Load(); !ok || err != nil || !s.LoggedIn || s.Broker != b.URL || s.Device.Name != "laptop" {
		t.Fatalf("saved state %+v, %v", s, err)
	}
	if h.engine() == nil {
		t.Fatal("no tunnel after sign-in")
	}
}

func TestBrowserLoginEnds(t *testing.T) {
	b := controltest.NewBroker(t)
	b.EnableLogin()
	h := startDaemon(t, t.TempDir())
	ctx := context.Background()

	// The broker ends the login: status says why, nothing is registered.
	st, err := h.client.Up(ctx, wire.UpRequest{Broker: b.URL, CAPEM: b.CAPEM, Name: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.FailLogin(st.LoginURL, "the login link expired before anyone signed in"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "login error", func() bool { return h.status().LoginError != "" })
	if st := h.status(); st.LoginURL != "" || !strings.Contains(st.LoginError, "expired") || st.State != wire.StateNeedsLogin {
		t.Fatalf("after a failed login: %+v", st)
	}

	// Logout cancels a waiting login.
	st, err = h.client.Up(ctx, wire.UpRequest{Broker: b.URL, CAPEM: b.CAPEM, Name: "laptop"})
	if err != nil || st.LoginError != "" || st.LoginURL == "" {
		t.Fatalf("second login: %v %+v", err, st)
	}
	if st, err := h.client.Logout(ctx); err != nil || st.LoginURL != "" {
		t.Fatalf("logout of a waiting login: %v %+v", err, st)
	}
	if _, err := h.client.Logout(ctx); err == nil {
		t.Fatal("a second logout found something to log out of")
	}

	// A login can wait while the daemon shuts down.
	if _, err := h.client.Up(ctx, wire.UpRequest{Broker: b.URL, CAPEM: b.CAPEM, Name: "laptop"}); err != nil {
		t.Fatal(err)
	}
	h.shutdown()
}

func TestBrowserLoginUnsupported(t *testing.T) {
	b := controltest.NewBroker(t) // without EnableLogin: an older broker
	h := startDaemon(t, t.TempDir())
	_, err := h.client.Up(context.Background(), wire.UpRequest{Broker: b.URL, CAPEM: b.CAPEM})
	var apiErr *ipc.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || !strings.Contains(err.Error(), "does not offer browser login") {
		t.Fatalf("up on a broker without browser login: %v", err)
	}
	if st := h.status(); st.LoginURL != "" || st.LoginError != "" {
		t.Fatalf("status %+v", st)
	}
}
