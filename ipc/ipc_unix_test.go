//go:build linux || darwin

package ipc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/weftmesh/weft/wire"
)

// helperEnv makes the test binary act as a local API client on the socket it names.
const helperEnv = "WEFT_IPC_TEST_CLIENT_SOCKET"

func TestMain(m *testing.M) {
	if sock := os.Getenv(helperEnv); sock != "" {
		c := &Client{Path: sock}
		st, err := c.Status(context.Background())
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(0)
		}
		fmt.Println("state:", st.State)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestPolicy(t *testing.T) {
	groups := map[uint32][]string{1001: {"100", "4242"}, 1002: {"100"}}
	p := policy{
		selfUID: 500,
		weftGID: "4242",
		groupsOf: func(uid uint32) ([]string, error) {
			g, ok := groups[uid]
			if !ok {
				return nil, errors.New("no such user")
			}
			return g, nil
		},
	}
	cases := []struct {
		name  string
		cred  peerCred
		allow bool
	}{
		{"root", peerCred{uid: 0, gids: []uint32{0}}, true},
		{"daemon's own user", peerCred{uid: 500, gids: []uint32{500}}, true},
		{"primary group weft", peerCred{uid: 1003, gids: []uint32{4242}}, true},
		{"supplementary group weft", peerCred{uid: 1001, gids: []uint32{100}}, true},
		{"not a member", peerCred{uid: 1002, gids: []uint32{100}}, false},
		{"unknown user", peerCred{uid: 1009, gids: []uint32{100}}, false},
	}
	for _, c := range cases {
		err := p.allow(c.cred)
		if (err == nil) != c.allow {
			t.Errorf("%s: allow = %v (err %v), want %v", c.name, err == nil, err, c.allow)
		}
	}
	noGroup := p
	noGroup.weftGID = ""
	if err := noGroup.allow(peerCred{uid: 1001, gids: []uint32{4242}}); err == nil {
		t.Error("without a group weft, a non-root user was allowed")
	}
}

// serve starts a local API server on a socket in a world-traversable directory and
// returns its path and a counter of requests that reached the handler.
func serve(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	dir, err := os.MkdirTemp("", "weft-ipc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "weftd.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wire.LocalPathStatus, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		json.NewEncoder(w).Encode(wire.Status{State: wire.StateRunning})
	})
	mux.HandleFunc("POST "+wire.LocalPathDown, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(wire.Error{Error: "not logged in"})
	})
	srv := NewServer(mux, nil)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock, &hits
}

func TestAllowedCaller(t *testing.T) {
	sock, hits := serve(t)
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want 0660", fi.Mode().Perm())
	}
	c := &Client{Path: sock}
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatalf("status as uid %d: %v", os.Getuid(), err)
	}
	if st.State != wire.StateRunning || hits.Load() != 1 {
		t.Fatalf("state %q, handler hits %d", st.State, hits.Load())
	}
	_, err = c.Down(context.Background())
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict || err.Error() != "not logged in" {
		t.Fatalf("down: got %v, want APIError 409 %q", err, "not logged in")
	}
}

func TestDisallowedUIDRefused(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another uid")
	}
	sock, hits := serve(t)
	// Let the other uid reach the socket so the credential check, not the mode, refuses it.
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(filepath.Dir(sock), "client.test")
	copyFile(t, exe, bin)

	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), helperEnv+"="+sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as uid 65534: %v: %s", err, out)
	}
	want := "error: " + DeniedMessage
	if got := strings.TrimSpace(string(out)); got != want {
		t.Fatalf("client as uid 65534 printed %q, want %q", got, want)
	}
	if hits.Load() != 0 {
		t.Fatalf("a refused caller reached the handler %d times", hits.Load())
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestNotRunning(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "weftd.sock")
	c := &Client{Path: sock}
	want := "weftd is not running (no socket at " + sock + ")"
	if _, err := c.Status(context.Background()); err == nil || err.Error() != want {
		t.Fatalf("missing socket: got %v, want %q", err, want)
	}
	// A socket file nobody listens on refuses the connection.
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := c.Status(context.Background()); err == nil || err.Error() != want {
		t.Fatalf("stale socket: got %v, want %q", err, want)
	}
}

func TestListenStaleAndLive(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "weftd.sock")

	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	ln, err := Listen(sock)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	defer ln.Close()

	if second, err := Listen(sock); err == nil {
		second.Close()
		t.Fatal("a second Listen on a live socket succeeded")
	}
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("the live socket was removed: %v", err)
	}

	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if l, err := Listen(plain); err == nil {
		l.Close()
		t.Fatal("Listen replaced a regular file")
	}
	if b, err := os.ReadFile(plain); err != nil || string(b) != "keep me" {
		t.Fatalf("regular file changed: %q, %v", b, err)
	}
}

func TestRequestWithoutVerdictRefused(t *testing.T) {
	h := admit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("handler reached without a verdict")
	}), slog.Default())
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, wire.LocalPathStatus, nil))
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), DeniedMessage) {
		t.Fatalf("got %d %q", rec.Code, rec.Body.String())
	}
}
