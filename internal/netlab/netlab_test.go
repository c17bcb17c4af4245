package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// helperArg makes the test binary act as a small network tool inside a lab namespace, so the
// tests need no nc or socat.
const helperArg = "netlab-helper"

func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == helperArg {
		if err := runHelper(os.Args[2], os.Args[3:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runHelper runs one helper:
//
//	udp-echo ADDR:PORT                       answer every datagram with its source address:port
//	udp-probe LOCALPORT TIMEOUT TARGET...    from LOCALPORT (0: any), ask each target echo
//	                                         what it sees and print one answer per line
func runHelper(name string, args []string) error {
	switch name {
	case "udp-echo":
		if len(args) != 1 {
			return errors.New("usage: udp-echo ADDR:PORT")
		}
		c, err := net.ListenPacket("udp4", args[0])
		if err != nil {
			return err
		}
		buf := make([]byte, 1500)
		for {
			_, from, err := c.ReadFrom(buf)
			if err != nil {
				return err
			}
			c.WriteTo([]byte(from.String()), from)
		}
	case "udp-probe":
		if len(args) < 3 {
			return errors.New("usage: udp-probe LOCALPORT TIMEOUT TARGET...")
		}
		timeout, err := time.ParseDuration(args[1])
		if err != nil {
			return err
		}
		c, err := net.ListenPacket("udp4", ":"+args[0])
		if err != nil {
			return err
		}
		defer c.Close()
		for _, target := range args[2:] {
			to, err := net.ResolveUDPAddr("udp4", target)
			if err != nil {
				return err
			}
			answer, err := probeOne(c, to, time.Now().Add(timeout))
			if err != nil {
				return err
			}
			fmt.Println(answer)
		}
		return nil
	}
	return fmt.Errorf("unknown helper %q", name)
}

// probeOne sends to the echo every 200 ms until it answers or the deadline passes.
func probeOne(c net.PacketConn, to *net.UDPAddr, deadline time.Time) (string, error) {
	buf := make([]byte, 1500)
	for time.Now().Before(deadline) {
		if _, err := c.WriteTo([]byte("probe"), to); err != nil {
			return "", err
		}
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			continue
		}
		if from.String() == to.String() {
			return string(buf[:n]), nil
		}
	}
	return "", fmt.Errorf("no answer from %s", to)
}

func helperExe(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// startEcho runs a UDP echo on h at port and returns its address.
func startEcho(t *testing.T, h *Host, port uint16) netip.AddrPort {
	t.Helper()
	ap := netip.AddrPortFrom(h.Addr(), port)
	h.Start(helperExe(t), helperArg, "udp-echo", ap.String())
	return ap
}

// probe asks each UDP echo which source address it sees for h, from localPort (0: any).
func probe(t *testing.T, h *Host, localPort uint16, timeout time.Duration, targets ...netip.AddrPort) ([]netip.AddrPort, error) {
	t.Helper()
	args := []string{helperExe(t), helperArg, "udp-probe", strconv.Itoa(int(localPort)), timeout.String()}
	for _, ap := range targets {
		args = append(args, ap.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout*time.Duration(len(targets))+10*time.Second)
	defer cancel()
	out, err := h.Run(ctx, args...)
	if err != nil {
		return nil, err
	}
	var seen []netip.AddrPort
	for _, line := range strings.Fields(string(out)) {
		ap, err := netip.ParseAddrPort(line)
		if err != nil {
			return nil, fmt.Errorf("probe output %q: %w", out, err)
		}
		seen = append(seen, ap)
	}
	if len(seen) != len(targets) {
		return nil, fmt.Errorf("probe output %q: want %d answers", out, len(targets))
	}
	return seen, nil
}

// mustSee asserts that the echo at target sees h as from.
func mustSee(t *testing.T, h *Host, target netip.AddrPort, from netip.Addr) {
	t.Helper()
	seen, err := probe(t, h, 0, 10*time.Second, target)
	if err != nil {
		t.Fatalf("%s to %s: %v", h.Name(), target, err)
	}
	if seen[0].Addr() != from {
		t.Fatalf("%s to %s: echo saw %s, want address %s", h.Name(), target, seen[0], from)
	}
}

// pingOnce is one ping that must fail or succeed at once, for asserting that something is blocked.
func pingOnce(h *Host, to netip.Addr) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := h.Run(ctx, "ping", "-n", "-c1", "-W2", to.String())
	return err
}

var dropCounterRE = regexp.MustCompile(`iifname "wan0" counter packets (\d+)`)

// wanDrops is how many packets the router's WAN filter dropped in a chain (input or forward).
func wanDrops(t *testing.T, r *Router, chain string) int {
	t.Helper()
	out, err := r.Run(context.Background(), "nft", "list", "chain", "inet", "netlab", chain)
	if err != nil {
		t.Fatal(err)
	}
	m := dropCounterRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no WAN drop rule in %s:\n%s", chain, out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

func TestFlatNetwork(t *testing.T) {
	t.Parallel()
	lab := New(t, "flat")
	a := lab.AddHost("a", lab.Internet())
	b := lab.AddHost("b", lab.Internet())
	if !lab.Internet().Prefix().Contains(a.Addr()) || !lab.Internet().Prefix().Contains(b.Addr()) || a.Addr() == b.Addr() {
		t.Fatalf("addresses %s and %s: want two distinct ones in %s", a.Addr(), b.Addr(), lab.Internet().Prefix())
	}
	if err := lab.Ping(a, b.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := lab.Ping(b, a.Addr()); err != nil {
		t.Fatal(err)
	}
	echo := startEcho(t, b, 7000)
	mustSee(t, a, echo, a.Addr())

	lab.Blackhole(a.Addr(), b.Addr())
	if err := pingOnce(a, b.Addr()); err == nil {
		t.Fatalf("ping %s → %s succeeded through a blackhole", a.Name(), b.Name())
	}
	// A host added afterwards is cut off from a too.
	c := lab.AddHost("c", lab.Internet())
	if err := lab.Ping(c, b.Addr()); err != nil {
		t.Fatalf("c → b is not blackholed: %v", err)
	}
}

func TestHomeRouters(t *testing.T) {
	t.Parallel()
	lab := New(t, "home")
	inet := lab.Internet()
	srv := lab.AddHost("srv", inet)
	echo := startEcho(t, srv, 7000)
	r1, lan1 := lab.AddRouter("home1", inet, NATHome)
	r2, lan2 := lab.AddRouter("home2", inet, NATHome)
	h1 := lab.AddHost("pc1", lan1)
	h2 := lab.AddHost("pc2", lan2)

	if lan1.Prefix() == lan2.Prefix() || !lan1.Prefix().Contains(h1.Addr()) || lan1.Gateway() != lan1.Prefix().Addr().Next() {
		t.Fatalf("LANs %s (gw %s) and %s, pc1 at %s: want distinct /24s with the router at .1", lan1.Prefix(), lan1.Gateway(), lan2.Prefix(), h1.Addr())
	}
	if err := lab.Ping(h1, srv.Addr()); err != nil {
		t.Fatal(err)
	}
	mustSee(t, h1, echo, r1.Addr())
	mustSee(t, h2, echo, r2.Addr())

	// Unsolicited traffic to a home router's WAN is dropped...
	rEcho := startEcho(t, r1.Host, 7001)
	if _, err := probe(t, srv, 0, 2*time.Second, rEcho); err == nil {
		t.Fatalf("srv reached an echo on home1's WAN: want it filtered")
	}
	if n := wanDrops(t, r1, "input"); n == 0 {
		t.Fatalf("home1's WAN input filter dropped nothing")
	}
	// ...but reaches a router without an input filter.
	open, _ := lab.AddRouter("open", inet, NATNoInputFilter)
	oEcho := startEcho(t, open.Host, 7001)
	mustSee(t, srv, oEcho, srv.Addr())
}

func TestNATKinds(t *testing.T) {
	t.Parallel()
	lab := New(t, "kinds")
	inet := lab.Internet()
	srv := lab.AddHost("srv", inet)
	e1 := startEcho(t, srv, 7000)
	e2 := startEcho(t, srv, 7001)

	// A home router keeps the mapping for every destination; a symmetric one does not.
	_, homeLAN := lab.AddRouter("home", inet, NATHome)
	hh := lab.AddHost("hh", homeLAN)
	seen, err := probe(t, hh, 40000, 10*time.Second, e1, e2)
	if err != nil {
		t.Fatal(err)
	}
	if seen[0] != seen[1] {
		t.Fatalf("home NAT mapped one socket to %s and %s: want one mapping", seen[0], seen[1])
	}
	sym, symLAN := lab.AddRouter("sym", inet, NATSymmetric)
	sh := lab.AddHost("sh", symLAN)
	seen, err = probe(t, sh, 40000, 10*time.Second, e1, e2)
	if err != nil {
		t.Fatal(err)
	}
	if seen[0].Addr() != sym.Addr() || seen[0] == seen[1] {
		t.Fatalf("symmetric NAT mapped one socket to %s and %s: want %s with two ports", seen[0], seen[1], sym.Addr())
	}

	// Double NAT: a home router behind a carrier's NAT.
	cg, cgLAN := lab.AddRouter("cgnat", inet, NATHome)
	inner, innerLAN := lab.AddRouter("inner", cgLAN, NATHome)
	ih := lab.AddHost("ih", innerLAN)
	if !cgLAN.Prefix().Contains(inner.Addr()) || innerLAN.Prefix().Overlaps(cgLAN.Prefix()) {
		t.Fatalf("inner router WAN %s, LAN %s: want its WAN in %s and its LAN apart", inner.Addr(), innerLAN.Prefix(), cgLAN.Prefix())
	}
	mustSee(t, ih, e1, cg.Addr())

	// Two homes may use the same range, each its own.
	_, lanA := lab.AddRouterWith("samea", inet, RouterOptions{NAT: NATHome, LAN: netip.MustParsePrefix("10.9.0.0/24")})
	_, lanB := lab.AddRouterWith("sameb", inet, RouterOptions{NAT: NATHome, LAN: netip.MustParsePrefix("10.9.0.0/24")})
	ha, hb := lab.AddHost("ha", lanA), lab.AddHost("hb", lanB)
	if ha.Addr() != hb.Addr() {
		t.Fatalf("first hosts of two identical LANs got %s and %s: want the same address", ha.Addr(), hb.Addr())
	}
	if err := lab.Ping(ha, srv.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := lab.Ping(hb, srv.Addr()); err != nil {
		t.Fatal(err)
	}
}

func TestRouterControls(t *testing.T) {
	t.Parallel()
	lab := New(t, "controls")
	inet := lab.Internet()
	srv := lab.AddHost("srv", inet)
	echo := startEcho(t, srv, 7000)
	r, lan := lab.AddRouter("home", inet, NATHome)
	h := lab.AddHost("pc", lan)
	mustSee(t, h, echo, r.Addr())

	r.BlockUDP()
	if _, err := probe(t, h, 0, 2*time.Second, echo); err == nil {
		t.Fatalf("UDP went out of a router that blocks it")
	}
	if err := lab.Ping(h, srv.Addr()); err != nil {
		t.Fatalf("BlockUDP blocked ICMP too: %v", err)
	}
	r.UnblockUDP()
	mustSee(t, h, echo, r.Addr())

	old := r.Addr()
	addr := r.Renumber()
	if addr == old || r.Addr() != addr || !inet.Prefix().Contains(addr) {
		t.Fatalf("Renumber: %s → %s (Addr %s): want a new address in %s", old, addr, r.Addr(), inet.Prefix())
	}
	mustSee(t, h, echo, addr)

	r.DropTo(srv.Addr())
	if err := pingOnce(h, srv.Addr()); err == nil {
		t.Fatalf("ping went through DropTo")
	}
	if _, err := probe(t, h, 0, 2*time.Second, echo); err == nil {
		t.Fatalf("UDP went through DropTo")
	}
}

func TestCleanup(t *testing.T) {
	t.Parallel()
	var prefix string
	var proc *Proc
	t.Run("lab", func(t *testing.T) {
		// A crashed run left a namespace with this lab's prefix, and a process in it.
		stale := prefixFor(testName(t), "clean") + "-leftover"
		if out, err := exec.Command("ip", "netns", "add", stale).CombinedOutput(); err != nil {
			t.Skipf("ip netns add: %v: %s", err, out)
		}
		left := exec.Command("ip", "netns", "exec", stale, "sleep", "600")
		if err := left.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			out, _ := exec.Command("ip", "netns", "pids", stale).Output()
			if len(strings.Fields(string(out))) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the leftover process never entered %s", stale)
			}
		}
		lab := New(t, "clean")
		prefix = lab.Prefix()
		if err := left.Wait(); err == nil {
			t.Errorf("the leftover process exited cleanly: want it killed")
		}
		if names, _ := listNamespaces(prefix); slices.Contains(names, stale) {
			t.Errorf("leftover namespace %s survived New", stale)
		}
		h := lab.AddHost("h", lab.Internet())
		proc = h.Start("sleep", "600")
	})
	if proc == nil {
		return // the subtest skipped or failed before starting it
	}
	select {
	case <-proc.Done():
	default:
		t.Errorf("a process still runs after its lab was cleaned up")
	}
	names, err := listNamespaces(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) > 0 {
		t.Errorf("namespaces left after cleanup: %v", names)
	}
}

func TestPrefixLock(t *testing.T) {
	if err := platformSupported(); err != nil {
		t.Skip(err)
	}
	if os.Geteuid() != 0 {
		t.Skip(SkipMessage)
	}
	prefix := prefixFor(testName(t), "lock")
	f, err := lockPrefix(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if g, err := lockPrefix(prefix); err == nil {
		unlockPrefix(g)
		t.Fatalf("a second lab took the lock of a live one")
	}
	unlockPrefix(f)
	g, err := lockPrefix(prefix)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlockPrefix(g)
}

func TestStandalone(t *testing.T) {
	t.Parallel()
	s, err := NewStandalone(t.Logf)
	if err != nil {
		t.Skip(err)
	}
	lab := New(s, "alone")
	a := lab.AddHost("a", lab.Internet())
	b := lab.AddHost("b", lab.Internet())
	if err := lab.Ping(a, b.Addr()); err != nil {
		s.Close()
		t.Fatal(err)
	}
	p := a.Start("sh", "-c", "echo hello from the lab; exec sleep 600")
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.Log(), "hello from the lab"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("process log %q: want its output", p.Log())
			break
		}
	}
	s.Close()
	select {
	case <-p.Done():
	default:
		t.Errorf("a process still runs after Close")
	}
	if names, err := listNamespaces(lab.Prefix()); err != nil || len(names) > 0 {
		t.Errorf("namespaces after Close: %v (%v)", names, err)
	}
}

func TestNamesValidated(t *testing.T) {
	for _, name := range []string{"", "A", "1a", "has-dash", "waytoolongname"} {
		if nameRE.MatchString(name) {
			t.Errorf("name %q accepted", name)
		}
	}
	for _, name := range []string{"a", "home1", "abcdefghijkl"} {
		if !nameRE.MatchString(name) {
			t.Errorf("name %q rejected", name)
		}
	}
	if p := prefixFor("TestX", "lab"); len(p+"-abcdefghijkl") > 64 || p != prefixFor("TestX", "lab") || p == prefixFor("TestY", "lab") {
		t.Errorf("prefix %q: want short, stable, and different per test", p)
	}
}

// TestSocketsInHost: a listener opened by the test process inside one host is reached
// from another host, and sees that host's address.
func TestSocketsInHost(t *testing.T) {
	t.Parallel()
	lab := New(t, "sockets")
	a := lab.AddHost("a", lab.Internet())
	b := lab.AddHost("b", lab.Internet())
	ln, err := b.Listen("tcp4", ":7001")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			seen <- err.Error()
			return
		}
		seen <- c.RemoteAddr().(*net.TCPAddr).IP.String()
		c.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := a.Dial(ctx, "tcp4", b.Addr().String()+":7001")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if got := <-seen; got != a.Addr().String() {
		t.Fatalf("listener saw %s, want %s", got, a.Addr())
	}
	// The listener is in b, not in the test's own namespace.
	if c, err := net.DialTimeout("tcp4", "127.0.0.1:7001", time.Second); err == nil {
		c.Close()
		t.Fatal("listener reachable from the root namespace")
	}
}
