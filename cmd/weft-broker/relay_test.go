package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/weftmesh/weft/broker"
	"github.com/weftmesh/weft/wire"
)

func TestRelayCommands(t *testing.T) {
	dir := startBroker(t)
	if r := runCmd("", "account", "create", "acme", "--data", dir); r.code != 0 {
		t.Fatalf("account create: %+v", r)
	}
	k, err := wire.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	key := k.Public().String()

	r := runCmd("", "relay", "add", "acme", "home", "--udp", "198.51.100.1:3479", "--key", key, "--data", dir)
	if r.code != 0 || r.stdout != "added relay home of account acme\n" {
		t.Fatalf("relay add: %+v", r)
	}
	r = runCmd("", "relay", "add", "--global", "eu", "--tls", "relay.example.com:443", "--key", key, "--data", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "global") {
		t.Fatalf("relay add --global: %+v", r)
	}
	if r := runCmd("", "relay", "add", "acme", "eu", "--udp", "198.51.100.1:3479", "--key", key, "--data", dir); r.code != 1 ||
		!strings.Contains(r.stderr, "already exists") {
		t.Fatalf("relay add with a global relay's name: %+v", r)
	}

	r = runCmd("", "relay", "list", "--data", dir)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 3 ||
		strings.Join(strings.Fields(lines[1]), " ") != "home acme 198.51.100.1:3479 - "+key ||
		strings.Join(strings.Fields(lines[2]), " ") != "eu (global) - relay.example.com:443 "+key {
		t.Fatalf("relay list:\n%s", r.stdout)
	}
	r = runCmd("", "relay", "list", "acme", "--json", "--data", dir)
	var rs []broker.AdminRelay
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rs) != nil || len(rs) != 2 || rs[0].Name != "home" {
		t.Fatalf("relay list acme --json: %+v", r)
	}

	if r := runCmd("", "relay", "remove", "acme", "home", "--data", dir); r.code != 0 || r.stdout != "removed relay home of account acme\n" {
		t.Fatalf("relay remove: %+v", r)
	}
	if r := runCmd("", "relay", "remove", "acme", "home", "--data", dir); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("relay remove again: %+v", r)
	}
	if r := runCmd("", "relay", "remove", "--global", "eu", "--data", dir); r.code != 0 {
		t.Fatalf("relay remove --global: %+v", r)
	}
	if r := runCmd("", "relay", "list", "--data", dir); r.code != 0 || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("relay list after removals: %+v", r)
	}
}

func TestRelayUsageErrors(t *testing.T) {
	k, _ := wire.NewPrivateKey()
	key := k.Public().String()
	for _, args := range [][]string{
		{"relay", "add", "acme", "home", "--udp", "192.0.2.1:1", "--data", "/x"},                  // no key
		{"relay", "add", "acme", "home", "--key", key, "--data", "/x"},                            // no address
		{"relay", "add", "acme", "home", "--udp", "192.0.2.1:1", "--key", "nope", "--data", "/x"}, // bad key
		{"relay", "add", "--global", "acme", "home", "--udp", "192.0.2.1:1", "--key", key, "--data", "/x"},
		{"relay", "add", "home", "--udp", "192.0.2.1:1", "--key", key, "--data", "/x"},
		{"relay", "remove", "acme", "--data", "/x"},
		{"relay", "remove", "acme", "home", "--udp", "192.0.2.1:1", "--data", "/x"},
		{"relay", "list", "a", "b", "--data", "/x"},
		{"relay", "move", "--data", "/x"},
		{"serve", "--relay-tls", "127.0.0.1:443", "--data", "/x"},
		{"serve", "--public-addr", "nope", "--data", "/x"},
	} {
		r := runCmd("", args...)
		if r.code != 2 || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q; want 2 and one line", args, r.code, r.stderr)
		}
	}
}
