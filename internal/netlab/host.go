package netlab

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
)

// Host is a namespace with one interface on a segment.
type Host struct {
	lab    *Lab
	name   string
	ns     string
	seg    *Segment
	ifname string

	mu   sync.Mutex // guards addr, which Router.Renumber changes
	addr netip.Addr
}

// AddHost adds a host named name (1-12 lower-case letters and digits, unique in the lab) on
// the segment: a namespace with loopback up and eth0 on the segment's bridge, the segment's
// next free address, and a default route through the segment's gateway if it has one.
func (l *Lab) AddHost(name string, on *Segment) *Host {
	l.t.Helper()
	l.reserveName(name)
	h := &Host{lab: l, name: name, ns: l.addNamespace(name), seg: on, ifname: "eth0"}
	h.addr = on.attach(h.ns, name, h.ifname)
	return h
}

// Name is the host's name in the lab.
func (h *Host) Name() string { return h.name }

// Netns is the host's network namespace, for `ip netns exec`.
func (h *Host) Netns() string { return h.ns }

// Addr is the host's address on its segment.
func (h *Host) Addr() netip.Addr {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.addr
}

// Segment is the segment the host is attached to.
func (h *Host) Segment() *Segment { return h.seg }

// Command returns a command that runs args in the host's namespace, for callers that need
// their own stdin, environment or pipes.
func (h *Host) Command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.ns}, args...)...)
}

// Run runs args to completion in the host's namespace and returns its combined output. The
// error says what ran where and includes the output.
func (h *Host) Run(ctx context.Context, args ...string) ([]byte, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("netlab: run on %s: no command", h.name)
	}
	out, err := h.Command(ctx, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("netlab: %s on %s: %w: %s", strings.Join(args, " "), h.name, err, bytes.TrimSpace(out))
	}
	return out, nil
}
