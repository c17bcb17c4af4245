package main

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/wire"
)

func runWeft(t *testing.T, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &env{stdin: os.Stdin, stdout: &out, stderr: &errOut})
	return code, out.String(), errOut.String()
}

func TestExitCodes(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	cases := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{}, 2, "no command given"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"status", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"ping"}, 2, "which peer?"},
		{[]string{"ping", "a", "-c", "0"}, 2, "-c must be between 1 and 100"},
		{[]string{"up", "--auth-key", "k", "--email", "e", "--account", "a"}, 2, "not both"},
		{[]string{"up", "--email", "e"}, 2, "--account and --email go together"},
		{[]string{"--socket", sock, "status"}, 1, "weftd is not running (no socket at " + sock + ")"},
		{[]string{"status", "--socket", sock}, 1, "weftd is not running"},
		{[]string{"--socket", sock, "ping", "alpha", "-c", "2"}, 1, "weftd is not running"},
	}
	for _, c := range cases {
		code, _, stderr := runWeft(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.stderr) {
			t.Errorf("weft %v: exit %d, stderr %q; want %d and %q", c.args, code, stderr, c.code, c.stderr)
		}
		if c.code == 1 && strings.Count(stderr, "\n") != 1 {
			t.Errorf("weft %v: error is not one line: %q", c.args, stderr)
		}
	}
}

func TestParseArgsInterspersed(t *testing.T) {
	for _, args := range [][]string{{"alpha", "-c", "7"}, {"-c", "7", "alpha"}} {
		e := &env{}
		fs := newFlags(e, "ping")
		n := fs.Int("c", 3, "")
		pos, err := parseArgs(fs, args, pingUsage)
		if err != nil || len(pos) != 1 || pos[0] != "alpha" || *n != 7 {
			t.Errorf("%v: pos %v count %d err %v", args, pos, *n, err)
		}
	}
}

func TestPrintStatus(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	st := wire.Status{
		State:           wire.StateRunning,
		Broker:          "https://broker.test",
		BrokerConnected: true,
		Self:            &wire.Device{Name: "laptop", Address: netip.MustParseAddr("100.64.0.5")},
		Interface:       "weft0",
		ListenPort:      51820,
		WireGuard:       "userspace",
		Peers: []wire.PeerStatus{
			{Device: wire.Device{Name: "desk", Address: netip.MustParseAddr("100.64.0.6"), Online: true},
				Endpoint: netip.MustParseAddrPort("203.0.113.5:51820"), LastHandshake: now.Add(-12 * time.Second),
				RxBytes: 1536, TxBytes: 10},
			{Device: wire.Device{Name: "nas", Address: netip.MustParseAddr("100.64.0.7")}},
		},
	}
	var b bytes.Buffer
	printStatus(&b, st, now)
	out := b.String()
	for _, want := range []string{"laptop  100.64.0.5  running", "tunnel: weft0, UDP port 51820, userspace WireGuard\n", "NAME", "desk", "203.0.113.5:51820", "12s ago", "1.5 KiB", "10 B", "never"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	printStatus(&b, wire.Status{State: wire.StateRevoked, Reason: "removed by admin"}, now)
	if !strings.HasPrefix(b.String(), "REMOVED: the broker removed this device from the mesh: removed by admin") {
		t.Errorf("revoked output:\n%s", b.String())
	}
	for _, c := range []struct {
		st   wire.Status
		want string
	}{
		{wire.Status{State: wire.StateNeedsLogin, LoginURL: "https://b.test/login/x"}, "Not logged in yet. To log in, open: https://b.test/login/x\n"},
		{wire.Status{State: wire.StateNeedsLogin, LoginError: "expired"}, "Not logged in: the last login failed: expired\n"},
		{wire.Status{State: wire.StateNeedsLogin}, "Not logged in. Join a mesh with: weft up --broker URL"},
	} {
		b.Reset()
		printStatus(&b, c.st, now)
		if !strings.HasPrefix(b.String(), c.want) {
			t.Errorf("status %+v printed:\n%s\nwant it to start with %q", c.st, b.String(), c.want)
		}
	}
}

func TestHumanUnits(t *testing.T) {
	now := time.Now()
	for d, want := range map[time.Duration]string{5 * time.Second: "5s ago", 3 * time.Minute: "3m ago", 5 * time.Hour: "5h ago", 72 * time.Hour: "3d ago"} {
		if got := ago(now.Add(-d), now); got != want {
			t.Errorf("ago(%v) = %q, want %q", d, got, want)
		}
	}
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := bytesHuman(n); got != want {
			t.Errorf("bytesHuman(%d) = %q, want %q", n, got, want)
		}
	}
}
