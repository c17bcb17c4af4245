package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/labrun"
	"github.com/weftmesh/weft/internal/netlab"
	"github.com/weftmesh/weft/wire"
)

// serveTCP accepts and closes connections on port inside host h until the test ends.
func serveTCP(t *testing.T, h *netlab.Host, port int) {
	t.Helper()
	ln, err := h.Listen("tcp4", fmt.Sprintf(":%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// tcpOpen reports whether from can connect to peer's mesh address at port.
func tcpOpen(from *labrun.Device, peer wire.Device, port int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	c, err := from.Host.Dial(ctx, "tcp4", net.JoinHostPort(peer.Address.String(), fmt.Sprint(port)))
	if err != nil {
		return err
	}
	c.Close()
	return nil
}

// expect polls until the device can (want true) or cannot reach peer's port.
func expect(t *testing.T, from *labrun.Device, peer wire.Device, port int, want bool) {
	t.Helper()
	what := fmt.Sprintf("%s → %s tcp/%d open=%v", from.Name, peer.Name, port, want)
	labrun.Eventually(t, 10*time.Second, what, func() error {
		err := tcpOpen(from, peer, port)
		switch {
		case want && err != nil:
			return err
		case !want && err == nil:
			return fmt.Errorf("connected")
		}
		return nil
	})
}

func writePolicy(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPolicy: the account's policy is compiled by the broker and enforced by each
// device's nftables: allowed ports open, denied ones closed, hidden peers gone from the
// map; changes reach every device at once; bad files change nothing.
func TestPolicy(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, "policy")
	bins := labrun.Build(t)
	broker := labrun.StartBroker(t, bins, lab.AddHost("broker", lab.Internet()))
	key := broker.NewAccount("acme")
	laptop := labrun.StartDevice(t, bins, lab.AddHost("laptop", lab.Internet()), "laptop")
	server := labrun.StartDevice(t, bins, lab.AddHost("server", lab.Internet()), "server")
	other := labrun.StartDevice(t, bins, lab.AddHost("other", lab.Internet()), "other")
	for _, d := range []*labrun.Device{laptop, server, other} {
		d.Up(broker, key)
	}
	selves := meshed(t, laptop, server, other)
	srv := selves["server"]
	serveTCP(t, server.Host, 22)
	serveTCP(t, server.Host, 80)

	// Zero configuration: everything is allowed.
	expect(t, laptop, srv, 22, true)
	expect(t, laptop, srv, 80, true)
	expect(t, other, srv, 80, true)

	good := writePolicy(t, `{"default":"deny","groups":{"servers":["server"],"laptops":["laptop"]},
 "rules":[{"from":["group:laptops"],"to":["group:servers"],"ports":["tcp/22","icmp"]}]}`)
	start := time.Now()
	broker.MustAdmin("policy", "set", "acme", good)
	expect(t, laptop, srv, 80, false)
	expect(t, other, srv, 22, false)
	t.Logf("policy took effect within %s", time.Since(start))
	expect(t, laptop, srv, 22, true)
	if err := laptop.Ping(srv); err != nil {
		t.Errorf("icmp is allowed laptop → server: %v", err)
	}
	if err := other.Ping(srv); err == nil {
		t.Errorf("other pings server, which the policy forbids")
	}
	// Rules are one-way: the server may not open connections to the laptop...
	serveTCP(t, laptop.Host, 22)
	if err := tcpOpen(server, selves["laptop"], 22); err == nil {
		t.Errorf("server → laptop tcp/22 connected; only laptop → server is allowed")
	}
	// ... and a peer the policy never lets a device talk to is not in its map at all.
	labrun.Eventually(t, 10*time.Second, "other's map is empty", func() error {
		if names := peerNames(other.MustStatus()); len(names) != 0 {
			return fmt.Errorf("other still sees %v", names)
		}
		return nil
	})

	// The kernel holds the compiled rule.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := server.Host.Run(ctx, "nft", "list", "ruleset")
	if err != nil || !strings.Contains(string(out), "dport 22") {
		t.Errorf("server's nftables does not show the policy: %v\n%s", err, out)
	}

	// A bad policy is refused with file, line and reason, and changes nothing.
	bad := writePolicy(t, "{\"default\":\"deny\",\n \"rules\":[{\"from\":[\"laptop\"],\"to\":[\"server\"],\"ports\":[\"tcp/99999\"]}]}")
	msg, err := broker.Admin("policy", "set", "acme", bad)
	if err == nil || !strings.Contains(msg, bad+":2:") {
		t.Errorf("bad policy: err %v, output %q; want refusal naming %s:2:COL", err, msg, bad)
	}
	expect(t, laptop, srv, 22, true)
	expect(t, laptop, srv, 80, false)
	if got := broker.MustAdmin("policy", "get", "acme"); !strings.Contains(got, "tcp/22") {
		t.Errorf("policy get after a refused set: %s", got)
	}

	// Back to allow-all: all open again.
	broker.MustAdmin("policy", "set", "acme", writePolicy(t, `{"default":"allow"}`))
	expect(t, laptop, srv, 80, true)
	expect(t, other, srv, 22, true)
}
