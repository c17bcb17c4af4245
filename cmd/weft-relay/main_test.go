package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/mesh/relayclient"
	"github.com/weftmesh/weft/wire"
)

// syncBuffer is written by the command while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, env{ctx: context.Background(), stdout: &out, stderr: &errb})
	return code, out.String(), errb.String()
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"key"},
		{"key", "--data", dir, "extra"},
		{"serve"},
		{"serve", "--data", dir, "--rate", "fast"},
		{"serve", "--data", dir, "--listen-udp", "off", "--listen-tls", "off"},
		{"serve", "--data", dir, "--tls-cert", "x.pem"},
		{"serve", "--data", dir, "--max-clients", "-1"},
	} {
		code, _, stderr := runCmd(args...)
		if code != 2 || !strings.HasPrefix(stderr, "weft-relay: ") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q; want 2 and one line", args, code, stderr)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("bad command lines changed the data directory: %v", entries)
	}
	if code, out, _ := runCmd("--help"); code != 0 || !strings.Contains(out, "weft-relay serve") {
		t.Errorf("--help: exit %d, %q", code, out)
	}
}

func TestKeyStable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "relay")
	code, first, stderr := runCmd("key", "--data", dir)
	if code != 0 {
		t.Fatalf("key: exit %d: %s", code, stderr)
	}
	if _, err := wire.ParseKey(strings.TrimSpace(first)); err != nil {
		t.Fatalf("key printed %q: %v", first, err)
	}
	if _, second, _ := runCmd("key", "--data", dir); second != first {
		t.Fatalf("key changed: %q then %q", first, second)
	}
}

// serve starts, prints its key and addresses, relays between a UDP and a TLS client,
// serves metrics and stops cleanly when its context ends.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"serve", "--data", dir, "--listen-udp", "127.0.0.1:0", "--listen-tls", "127.0.0.1:0",
			"--metrics", "127.0.0.1:0", "--rate", "10M"}, env{ctx: ctx, stdout: &out, stderr: &errb})
	}()
	lines := map[string]string{}
	deadline := time.Now().Add(10 * time.Second)
	for len(lines) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("serve printed %q; stderr %q", out.String(), errb.String())
		}
		time.Sleep(10 * time.Millisecond)
		for _, l := range strings.Split(out.String(), "\n") {
			if k, v, ok := strings.Cut(l, ": "); ok {
				lines[k] = v
			}
		}
	}
	relayKey, err := wire.ParseKey(lines["public key"])
	if err != nil {
		t.Fatal(err)
	}
	_, keyOut, _ := runCmd("key", "--data", dir)
	if strings.TrimSpace(keyOut) != relayKey.String() {
		t.Fatalf("serve printed %s, key prints %s", relayKey, keyOut)
	}
	privA, _ := wire.NewPrivateKey()
	privB, _ := wire.NewPrivateKey()
	a, err := relayclient.Dial(ctx, relayclient.Config{UDPAddr: lines["udp"], RelayKey: relayKey, PrivateKey: privA})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := relayclient.Dial(ctx, relayclient.Config{URL: "https://" + lines["tls"], RelayKey: relayKey, PrivateKey: privB})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.Send(privB.Public(), []byte("through weft-relay")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	src, n, err := b.Recv(buf)
	if err != nil || src != privA.Public() || string(buf[:n]) != "through weft-relay" {
		t.Fatalf("recv %q from %v: %v", buf[:n], src, err)
	}
	resp, err := http.Get(lines["metrics"])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "weft_relay_forwarded_packets_total 1\n") {
		t.Errorf("metrics:\n%s", body)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(errb.String(), "relay stopped") {
		t.Errorf("stderr: %s", errb.String())
	}
}
