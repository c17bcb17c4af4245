package broker

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAdminSocket(t *testing.T) {
	tb := startBroker(t, nil)
	ctx := t.Context()
	sock := filepath.Join(tb.dir, AdminSocket)
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("admin socket mode %v, %v; want a 0600 socket", fi.Mode(), err)
	}
	ac, err := NewAdminClient(tb.dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ac.CreateAccount(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.CreateAccount(ctx, "acme"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("duplicate account: %v", err)
	}
	if _, err := ac.CreateAccount(ctx, "-bad"); err == nil || !strings.Contains(err.Error(), "starts with '-'") {
		t.Fatalf("bad account name: %v", err)
	}
	if err := ac.AddUser(ctx, AdminUserRequest{Account: "acme", Email: "ann@example.com", Password: "short"}); err == nil {
		t.Fatal("short password accepted")
	}
	if err := ac.AddUser(ctx, AdminUserRequest{Account: "acme", Email: "ann@example.com", Password: "long enough"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.CreateAuthKey(ctx, AdminAuthKeyRequest{Account: "nope"}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("key for unknown account: %v", err)
	}
	key, err := ac.CreateAuthKey(ctx, AdminAuthKeyRequest{Account: "acme", Expires: time.Hour})
	if err != nil || !strings.HasPrefix(key, "weftkey-") {
		t.Fatalf("auth key %q, %v", key, err)
	}

	d := tb.newDevice(t, "laptop")
	d.register(t, key)
	devs, err := ac.Devices(ctx, "acme")
	if err != nil || len(devs) != 1 || devs[0].Name != "laptop" || devs[0].Online || devs[0].Address != d.Address {
		t.Fatalf("devices %+v, %v", devs, err)
	}
	m := d.openMap(t)
	m.next(t)
	devs, _ = ac.Devices(ctx, "acme")
	if !devs[0].Online {
		t.Fatal("device with a live stream listed offline")
	}
	if _, err := ac.Devices(ctx, "nope"); err == nil {
		t.Fatal("listing an unknown account succeeded")
	}
	if _, err := ac.RemoveDevice(ctx, "acme", "laptop"); err != nil {
		t.Fatal(err)
	}
	if u := m.next(t); u.Revoked == "" {
		t.Fatalf("got %+v, want revoked", u)
	}
	if _, err := ac.RemoveDevice(ctx, "acme", "laptop"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("removing twice: %v", err)
	}

	// Unknown fields are refused here too.
	var reply map[string]any
	if err := ac.do(ctx, http.MethodPost, AdminPathAccounts, map[string]string{"name": "x", "colour": "red"}, &reply); err == nil ||
		!strings.Contains(err.Error(), "unknown field") {
		t.Fatalf("unknown field: %v", err)
	}
}

func TestAdminNotRunning(t *testing.T) {
	dir := t.TempDir()
	_, err := NewAdminClient(dir)
	want := "broker not running: no admin socket at " + filepath.Join(dir, AdminSocket)
	if !errors.Is(err, ErrNotRunning) || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	// A socket left behind by a crashed broker.
	ln, err := net.Listen("unix", filepath.Join(dir, AdminSocket))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ac, err := NewAdminClient(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ac.CreateAccount(t.Context(), "acme"); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("stale socket: err = %v, want ErrNotRunning", err)
	}
}

func TestSecondBrokerOnSameDataRefused(t *testing.T) {
	tb := startBroker(t, nil)
	b2, err := New(t.Context(), Config{DataDir: tb.dir, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if err := b2.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second broker: %v", err)
	}
	// The first still answers.
	ac, _ := NewAdminClient(tb.dir)
	if _, err := ac.CreateAccount(t.Context(), "acme"); err != nil {
		t.Fatal(err)
	}
}

func TestAdminPeerCheck(t *testing.T) {
	tb := startBroker(t, nil)
	h := tb.adminHandler()
	for _, c := range []struct {
		p    peer
		want int
	}{
		{peer{uid: 0}, http.StatusNotFound}, // allowed through, to an unknown path
		{peer{uid: os.Getuid()}, http.StatusNotFound},
		{peer{uid: 12345}, http.StatusForbidden},
		{peer{uid: -1, err: errors.New("no credentials")}, http.StatusForbidden},
	} {
		r := httptest.NewRequest(http.MethodGet, "/nope", nil)
		r = r.WithContext(context.WithValue(r.Context(), peerKey{}, c.p))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("peer %+v: %d %s, want %d", c.p, w.Code, w.Body, c.want)
		}
	}
	// Without a peer in the context (not from the admin listener): refused.
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/nope", nil))
	if w.Code != http.StatusForbidden {
		t.Fatalf("no peer: %d", w.Code)
	}
}
