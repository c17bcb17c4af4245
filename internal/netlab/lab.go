// Package netlab builds throwaway networks from Linux network namespaces, veth pairs,
// bridges and nftables NAT routers, runs real binaries inside them, and always cleans up.
//
// Everything a lab makes lives in namespaces named after the lab's prefix ("wl" + a hash of
// the test and lab names): the "internet" bridge has a namespace of its own and LAN bridges
// live in their router's namespace, so nothing is added to the root namespace, labs running
// in parallel (even in other test processes) never collide, and deleting the namespaces
// removes everything. The lab is IPv4 only: IPv6 is disabled in its namespaces so that
// link-local addresses do not show up as endpoint candidates.
//
// The lab drives the ip, nft and conntrack commands rather than netlink: each step is a
// command line that can be pasted into a shell to reproduce or inspect a lab, and there is
// no need to pin goroutines to OS threads while switching namespaces.
package netlab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"
)

// TB is the part of testing.TB the lab uses. *testing.T and *testing.B satisfy it; programs
// that are not tests use Standalone.
type TB interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skip(args ...any)
	Cleanup(func())
	TempDir() string
	Failed() bool
}

// SkipMessage is why a lab skips on a machine where it cannot run.
const SkipMessage = "netlab: needs root (network namespaces); run as root, CI does"

// cmdTimeout bounds every setup command, so a wedged tool fails the test instead of hanging it.
const cmdTimeout = 30 * time.Second

// Internet is 203.0.113.0/24 (TEST-NET-3): public-looking, and it exists only inside the lab.
var internetPrefix = netip.MustParsePrefix("203.0.113.0/24")

// Lab is one throwaway network. Its methods call t.Fatalf when setup fails, so they must be
// called from the test's goroutine.
type Lab struct {
	t      TB
	prefix string // namespace name prefix, e.g. "wl3fa91c"
	lock   *os.File
	logDir string // process logs
	inet   *Segment

	mu         sync.Mutex // guards the fields below
	names      map[string]bool
	segments   []*Segment
	routers    []*Router
	procs      []*Proc
	blackholes [][2]netip.Addr
	nextLAN    int // third octet of the next default LAN, 192.168.N.0/24
	procSeq    int
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,11}$`)

// New builds an empty lab with its internet segment. The lab is torn down in t.Cleanup:
// processes are stopped, then the namespaces deleted. Namespaces left with the same prefix by
// an earlier run that crashed are deleted first. New skips the test when the machine cannot
// run a lab (not root, or no `ip netns`).
func New(t TB, name string) *Lab {
	t.Helper()
	if err := preflight(); err != nil {
		t.Skip(err.Error())
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatalf("netlab: nft not found (Debian package nftables): run ./build.sh deps")
	}
	if !nameRE.MatchString(name) {
		t.Fatalf("netlab: lab name %q: want 1-12 lower-case letters and digits, starting with a letter", name)
	}
	l := &Lab{
		t:       t,
		prefix:  prefixFor(testName(t), name),
		logDir:  t.TempDir(), // before Cleanup(l.close), so it is removed after the lab
		names:   map[string]bool{},
		nextLAN: 1,
	}
	lock, err := lockPrefix(l.prefix)
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	l.lock = lock
	// Holding the lock, anything with our prefix is a leftover of a crashed run.
	if err := deleteNamespaces(l.prefix); err != nil {
		unlockPrefix(lock)
		t.Fatalf("netlab: removing leftovers of an earlier run: %v", err)
	}
	t.Cleanup(l.close)
	l.inet = l.newSegment("inet", l.addNamespace("inet"), "br0", internetPrefix, netip.Addr{})
	// The internet is a bridge, so NAT routers on it are next to each other; on the real
	// internet routers lie between them. A packet that would die at the first of those
	// (TTL 1 on the wire) dies here too, which keeps a TTL-limited probe from reaching the
	// peer's NAT, as it would not in the wild.
	l.nft(l.inet.ns, "add rule bridge netlab pre ip ttl <= 1 counter drop\n")
	return l
}

// testName identifies the caller: the working directory (go test runs each package in its
// own) and t.Name() when t has one, so that labs of the same name in two tests, or in two
// packages' tests running at the same time, get different prefixes.
func testName(t TB) string {
	dir, _ := os.Getwd()
	if n, ok := t.(interface{ Name() string }); ok {
		return dir + "\x00" + n.Name()
	}
	return dir
}

// prefixFor derives a lab's namespace prefix. It is stable across runs, so a rerun finds and
// removes what a crashed run left, and short, so that names stay readable in `ip netns`.
func prefixFor(test, name string) string {
	sum := sha256.Sum256([]byte(test + "\x00" + name))
	return "wl" + hex.EncodeToString(sum[:3])
}

// preflight reports why this machine cannot run a lab, or nil.
func preflight() error {
	if err := platformSupported(); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s", SkipMessage)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "list").CombinedOutput(); err != nil {
		return fmt.Errorf("%s (ip netns list: %v: %s)", SkipMessage, err, bytes.TrimSpace(out))
	}
	return nil
}

// Prefix is the prefix of every namespace this lab creates.
func (l *Lab) Prefix() string { return l.prefix }

// Internet is the lab's public segment, 203.0.113.0/24 on a bridge in its own namespace.
// It has no gateway: everything attached to it is on-link.
func (l *Lab) Internet() *Segment { return l.inet }

// Ping pings to from the host, retrying for a while so that a route or NAT still settling
// is not reported as a failure. It returns the last ping's error.
func (l *Lab) Ping(from *Host, to netip.Addr) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := from.Run(ctx, "ping", "-n", "-c1", "-W1", to.String())
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Blackhole drops all traffic between a and b on every bridge of the lab, now and on
// segments added later, as a cut cable between them would. Addresses are matched as they
// are on each segment, so a LAN address is matched before its router's NAT, a router's WAN
// address on the segment its WAN is on.
func (l *Lab) Blackhole(a, b netip.Addr) {
	l.t.Helper()
	l.mu.Lock()
	l.blackholes = append(l.blackholes, [2]netip.Addr{a, b})
	segs := append([]*Segment(nil), l.segments...)
	l.mu.Unlock()
	for _, s := range segs {
		l.nft(s.ns, blackholeRules(a, b))
	}
}

// reserveName claims a lab-unique name for a host or router.
func (l *Lab) reserveName(name string) {
	l.t.Helper()
	if !nameRE.MatchString(name) || name == "inet" {
		l.t.Fatalf("netlab: name %q: want 1-12 lower-case letters and digits, starting with a letter (and not \"inet\")", name)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.names[name] {
		l.t.Fatalf("netlab: name %q is already used in this lab", name)
	}
	l.names[name] = true
}

// addNamespace creates the namespace prefix-name with loopback up and IPv6 off.
func (l *Lab) addNamespace(name string) string {
	l.t.Helper()
	ns := l.prefix + "-" + name
	// A process creating the first namespace on a machine races others making /run/netns
	// a shared mount point; a retry gets past it.
	var err error
	for range 3 {
		if _, err = run(nil, "ip", "netns", "add", ns); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		l.t.Fatalf("netlab: %v", err)
	}
	l.ip("-n", ns, "link", "set", "lo", "up")
	l.sysctl(ns, "net/ipv6/conf/all/disable_ipv6", "1")
	l.sysctl(ns, "net/ipv6/conf/default/disable_ipv6", "1")
	return ns
}

// sysctl writes a per-namespace sysctl through /proc, which needs no sysctl binary.
func (l *Lab) sysctl(ns, key, value string) {
	l.t.Helper()
	l.must("ip", "netns", "exec", ns, "sh", "-c", fmt.Sprintf("echo %s > /proc/sys/%s", value, key))
}

// ip runs the ip command and fails the test if it fails.
func (l *Lab) ip(args ...string) {
	l.t.Helper()
	l.must("ip", args...)
}

// nft loads an nft script into a namespace's ruleset and fails the test if it fails.
func (l *Lab) nft(ns, script string) {
	l.t.Helper()
	if _, err := run([]byte(script), "ip", "netns", "exec", ns, "nft", "-f", "-"); err != nil {
		l.t.Fatalf("netlab: %v\nscript:\n%s", err, script)
	}
}

func (l *Lab) must(name string, args ...string) []byte {
	l.t.Helper()
	out, err := run(nil, name, args...)
	if err != nil {
		l.t.Fatalf("netlab: %v", err)
	}
	return out
}

// run runs a setup command with stdin and returns its combined output; the error includes
// the command line and its output.
func run(stdin []byte, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// close stops every process, deletes the lab's namespaces and checks that none is left.
func (l *Lab) close() {
	l.mu.Lock()
	procs := append([]*Proc(nil), l.procs...)
	l.mu.Unlock()
	for _, p := range procs {
		p.Stop()
	}
	if err := deleteNamespaces(l.prefix); err != nil {
		l.t.Errorf("netlab: cleanup: %v", err)
	}
	if left, err := listNamespaces(l.prefix); err != nil {
		l.t.Errorf("netlab: cleanup: %v", err)
	} else if len(left) > 0 {
		l.t.Errorf("netlab: cleanup left namespaces %v", left)
	}
	unlockPrefix(l.lock)
}

// listNamespaces lists the namespaces whose names start with prefix + "-".
func listNamespaces(prefix string) ([]string, error) {
	out, err := run(nil, "ip", "netns", "list")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		// Lines look like "name" or "name (id: 3)".
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, prefix+"-") {
			names = append(names, name)
		}
	}
	return names, nil
}

// deleteNamespaces kills whatever still runs in the prefix's namespaces and deletes them.
func deleteNamespaces(prefix string) error {
	names, err := listNamespaces(prefix)
	if err != nil {
		return err
	}
	var errs []string
	for _, ns := range names {
		// A namespace outlives its name while processes are inside, and a leftover process
		// (a crashed run's daemon) would keep its sockets and interfaces alive.
		if out, err := run(nil, "ip", "netns", "pids", ns); err == nil {
			for _, pid := range strings.Fields(string(out)) {
				killPID(pid)
			}
		}
		if _, err := run(nil, "ip", "netns", "delete", ns); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}
