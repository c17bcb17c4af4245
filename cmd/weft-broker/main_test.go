package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/weftmesh/weft/broker"
	"github.com/weftmesh/weft/broker/store"
	"github.com/weftmesh/weft/wire"
)

type result struct {
	code           int
	stdout, stderr string
}

func runCmd(stdin string, args ...string) result {
	var out, errb bytes.Buffer
	code := run(args, env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb})
	return result{code, out.String(), errb.String()}
}

func startBroker(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	b, err := broker.New(ctx, broker.Config{DataDir: dir, Listen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		StoreOptions: store.Options{PasswordParams: &argon2id.Params{
			Memory: 1024, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		b.Wait()
		b.Close()
	})
	return dir
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"account"},
		{"account", "create", "acme"}, // no --data
		{"account", "delete", "acme", "--data", "/x"},
		{"account", "create", "--data", "/x"},
		{"account", "create", "a", "b", "--data", "/x"},
		{"authkey", "create", "acme", "--expires", "soon", "--data", "/x"},
		{"authkey", "create", "acme", "--bogus", "--data", "/x"},
		{"user", "add", "acme", "ann@example.com", "--data", "/x"}, // no --password-file
		{"serve", "extra", "--data", "/x"},
	} {
		r := runCmd("", args...)
		if r.code != 2 || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "weft-broker: ") {
			t.Errorf("%q: exit %d, stderr %q; want 2 and one line", args, r.code, r.stderr)
		}
	}
	if r := runCmd("", "--help"); r.code != 0 || !strings.Contains(r.stdout, "usage:") {
		t.Errorf("--help: %+v", r)
	}
}

func TestNotRunning(t *testing.T) {
	dir := t.TempDir()
	r := runCmd("", "account", "create", "acme", "--data", dir)
	want := "weft-broker: broker not running: no admin socket at " + filepath.Join(dir, "admin.sock") + "\n"
	if r.code != 1 || r.stderr != want {
		t.Fatalf("exit %d, stderr %q; want 1, %q", r.code, r.stderr, want)
	}
}

func TestAdminCommands(t *testing.T) {
	dir := startBroker(t)
	// --data before and after the positional arguments.
	if r := runCmd("", "--data", dir, "account", "create", "acme"); r.code != 0 || r.stdout != "created account acme\n" {
		t.Fatalf("account create (data first): %+v", r)
	}
	if r := runCmd("", "account", "create", "beta", "--data", dir); r.code != 0 {
		t.Fatalf("account create (data last): %+v", r)
	}
	if r := runCmd("", "account", "create", "acme", "--data", dir); r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("duplicate account: %+v", r)
	}

	if r := runCmd("correct horse\n", "user", "add", "acme", "ann@example.com", "--password-file", "-", "--data", dir); r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("short\n"), 0o600)
	if r := runCmd("", "user", "add", "acme", "bob@example.com", "--password-file", pwFile, "--data", dir); r.code != 1 || !strings.Contains(r.stderr, "minimum is 8") {
		t.Fatalf("short password: %+v", r)
	}

	r := runCmd("", "authkey", "create", "acme", "--reusable", "--expires", "7d", "--data", dir)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "weftkey-") || strings.Count(r.stdout, "\n") != 1 || r.stderr != "" {
		t.Fatalf("authkey create: %+v", r)
	}
	if r := runCmd("", "--data", dir, "authkey", "create", "nope"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("authkey for unknown account: %+v", r)
	}

	if r := runCmd("", "device", "list", "acme", "--data", dir); r.code != 0 ||
		strings.Join(strings.Fields(r.stdout), " ") != "NAME ADDRESS ONLINE LAST-SEEN PUBLIC-KEY" {
		t.Fatalf("device list: %+v", r)
	}
	r = runCmd("", "device", "list", "acme", "--json", "--data", dir)
	var devs []broker.AdminDevice
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &devs) != nil || len(devs) != 0 {
		t.Fatalf("device list --json: %+v", r)
	}
	if r := runCmd("", "device", "remove", "acme", "ghost", "--data", dir); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("remove unknown device: %+v", r)
	}
}

func TestPrintDevices(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	devs := []broker.AdminDevice{
		{Device: wire.Device{Name: "laptop", Address: netip.MustParseAddr("100.64.0.1"), Online: true}, LastSeen: now},
		{Device: wire.Device{Name: "phone", Address: netip.MustParseAddr("100.64.0.2")}, LastSeen: now.Add(-90 * time.Minute)},
		{Device: wire.Device{Name: "old", Address: netip.MustParseAddr("100.64.0.3")}},
	}
	var b bytes.Buffer
	if err := printDevices(&b, devs, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := [][]string{
		{"NAME", "ADDRESS", "ONLINE", "LAST-SEEN", "PUBLIC-KEY"},
		{"laptop", "100.64.0.1", "yes", "now"},
		{"phone", "100.64.0.2", "no", "1h", "ago"},
		{"old", "100.64.0.3", "no", "never"},
	}
	if len(lines) != len(want) {
		t.Fatalf("table:\n%s", b.String())
	}
	for i, w := range want {
		got := strings.Fields(lines[i])
		if len(got) < len(w) || !slices.Equal(got[:len(w)], w) {
			t.Fatalf("line %d = %q, want it to start with %q", i, lines[i], w)
		}
	}
}
