package platform

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	vnetns "github.com/vishvananda/netns"

	"github.com/weftmesh/weft/internal/netlab"
)

// Helpers for the gateway and router tests, which build their networks with netlab and
// call the platform code from a thread switched into a lab namespace, as weftd calls it
// in its own.

// inNamespace runs fn on an OS thread switched into the named network namespace; sockets
// and /proc/sys/net opened there belong to that namespace. The thread switches back
// before it is unlocked: a thread left behind in a lab namespace (the main thread cannot
// exit) would make the process look like one of the lab's, and netlab kills those.
func inNamespace(t *testing.T, ns string, fn func() error) error {
	t.Helper()
	target, err := vnetns.GetFromName(ns)
	if err != nil {
		t.Fatalf("open namespace %s: %v", ns, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := vnetns.Get()
		if err != nil {
			errc <- fmt.Errorf("current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := vnetns.Set(target); err != nil {
			errc <- fmt.Errorf("enter %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := vnetns.Set(orig); err != nil {
			errc <- fmt.Errorf("leave %s: %w", ns, err) // the thread stays locked and dies
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// ipIn runs `ip ARGS` in a host's namespace and fails the test if it fails.
func ipIn(t *testing.T, h *netlab.Host, args ...string) string {
	t.Helper()
	return run(t, "ip", append([]string{"-n", h.Netns()}, args...)...)
}

// cmdIn runs a command in a host's namespace and fails the test if it fails.
func cmdIn(t *testing.T, h *netlab.Host, args ...string) string {
	t.Helper()
	out, err := h.Run(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// serveWhoAmI accepts TCP connections on addr in h and answers each with the source
// address it sees, then closes it.
func serveWhoAmI(t *testing.T, h *netlab.Host, addr string) {
	t.Helper()
	ln, err := h.Listen("tcp4", addr)
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
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			fmt.Fprintln(c, host)
			c.Close()
		}
	}()
}

// whoAmI connects from h to addr (a serveWhoAmI server) and returns the source address the
// server saw. A connection that is dropped on the way fails with a timeout.
func whoAmI(h *netlab.Host, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := h.Dial(ctx, "tcp4", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read from %s: %w", addr, err)
	}
	return strings.TrimSpace(line), nil
}

// expectSeenAs checks that a connection from h to addr works and the server sees want.
func expectSeenAs(t *testing.T, step string, h *netlab.Host, addr, want string) {
	t.Helper()
	got, err := whoAmI(h, addr)
	if err != nil {
		t.Errorf("%s: %s -> %s: %v", step, h.Name(), addr, err)
		return
	}
	if got != want {
		t.Errorf("%s: %s -> %s: the server saw %s, want %s", step, h.Name(), addr, got, want)
	}
}

// expectBlocked checks that a connection from h to addr is dropped on the way (its SYN
// gets no answer), not refused or answered.
func expectBlocked(t *testing.T, step string, h *netlab.Host, addr string) {
	t.Helper()
	got, err := whoAmI(h, addr)
	switch {
	case err == nil:
		t.Errorf("%s: %s -> %s connected (the server saw %s), want it dropped", step, h.Name(), addr, got)
	case !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err):
		t.Errorf("%s: %s -> %s failed with %v, want a timeout (dropped SYN)", step, h.Name(), addr, err)
	}
}
