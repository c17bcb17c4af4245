package platform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/weftmesh/weft/wire"
)

// netns is a network namespace made for one test with `ip netns`.
type netns struct {
	name string
	fd   int
}

func newNetns(t *testing.T, suffix string) *netns {
	t.Helper()
	name := fmt.Sprintf("weftfw-%d-%s", os.Getpid(), suffix)
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return &netns{name: name, fd: fd}
}

// do runs fn on a thread switched into the namespace; sockets fn creates live there.
func (n *netns) do(t *testing.T, fn func()) {
	t.Helper()
	done := make(chan struct{})
	var setErr error
	go func() {
		defer close(done)
		// The thread is left locked and so dies with the goroutine: it never returns to
		// the pool in the wrong namespace.
		runtime.LockOSThread()
		if setErr = unix.Setns(n.fd, unix.CLONE_NEWNET); setErr != nil {
			return
		}
		fn()
	}()
	<-done
	if setErr != nil {
		t.Fatalf("enter %s: %v", n.name, setErr)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func needRootAndNft(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
}

func (n *netns) nftList(t *testing.T, what ...string) string {
	t.Helper()
	return run(t, "ip", append([]string{"netns", "exec", n.name, "nft", "list"}, what...)...)
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestNFTFirewallRuleset checks what the kernel holds after Apply, reapply and Close.
func TestNFTFirewallRuleset(t *testing.T) {
	needRootAndNft(t)
	ns := newNetns(t, "rules")
	// No dummy module on every kernel: a veth pair is as good a stand-in for the tunnel.
	run(t, "ip", "-n", ns.name, "link", "add", "wt0", "type", "veth", "peer", "name", "wt0peer")
	// Someone else's tables, one with weft's name in another family: never touched.
	other := "table inet other {\n\tchain c {\n\t\ttype filter hook input priority filter + 10; policy accept;\n\t\ttcp dport 9 drop\n\t}\n}\ntable ip weft {\n\tchain c {\n\t\tudp dport 7 drop\n\t}\n}\n"
	cmd := exec.Command("ip", "netns", "exec", ns.name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(other)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("load other tables: %v\n%s", err, out)
	}

	fw, err := newNFTFirewall(quietLog(), "weft", nftables.WithNetNSFd(ns.fd))
	if err != nil {
		t.Fatal(err)
	}
	self := netip.MustParseAddr("100.64.0.9")
	first := wire.PacketFilter{Rules: []wire.FilterRule{
		{Sources: prefixes("100.64.0.1/32", "100.64.0.2/32", "100.64.0.7/32"), Proto: "icmp"},
		{Sources: prefixes("100.64.0.1/32"), Proto: "tcp", Ports: []wire.PortRange{{First: 22, Last: 22}}},
		{Sources: prefixes("100.64.0.2/32", "100.64.0.3/32", "10.0.0.0/8"), Proto: "udp",
			Ports: []wire.PortRange{{First: 53, Last: 53}, {First: 8000, Last: 8080}}},
		{Sources: prefixes("100.64.0.5/32", "fd00::1/128"), Proto: "*"},
		{Sources: prefixes("fd00::2/128"), Proto: "tcp"}, // another family: left out
	}}
	if err := fw.Apply("wt0", self, first); err != nil {
		t.Fatal(err)
	}
	want := `table inet weft {
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "wt0" jump tunnel_in
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "wt0" jump tunnel_fwd
	}

	chain tunnel_in {
		ct state established,related accept
		ct state invalid drop
		ip saddr { 100.64.0.1-100.64.0.2, 100.64.0.7 } ip daddr 100.64.0.9 icmp type echo-request accept
		ip saddr 100.64.0.1 ip daddr 100.64.0.9 tcp dport 22 accept
		ip saddr { 10.0.0.0/8, 100.64.0.2/31 } ip daddr 100.64.0.9 udp dport { 53, 8000-8080 } accept
		ip saddr 100.64.0.5 ip daddr 100.64.0.9 accept
		drop
	}

	chain tunnel_fwd {
		ct state established,related accept
		drop
	}
}
`
	if got := ns.nftList(t, "table", "inet", "weft"); got != want {
		t.Errorf("after first Apply:\n%s\nwant:\n%s", got, want)
	}

	// Reapply: the new rules replace the old ones entirely.
	second := wire.PacketFilter{Rules: []wire.FilterRule{
		{Sources: prefixes("100.64.0.4/32"), Proto: "tcp", Ports: []wire.PortRange{{First: 443, Last: 443}, {First: 1, Last: 10}}},
	}}
	if err := fw.Apply("wt1", self, second); err != nil {
		t.Fatal(err)
	}
	got := ns.nftList(t, "table", "inet", "weft")
	for _, line := range []string{`iifname "wt1" jump tunnel_in`, `ip saddr 100.64.0.4 ip daddr 100.64.0.9 tcp dport { 1-10, 443 } accept`} {
		if !strings.Contains(got, line) {
			t.Errorf("after second Apply, missing %q in:\n%s", line, got)
		}
	}
	for _, old := range []string{"wt0", "100.64.0.1", "udp", "icmp"} {
		if strings.Contains(got, old) {
			t.Errorf("after second Apply, %q of the first filter is still there:\n%s", old, got)
		}
	}

	// An invalid filter is refused and changes nothing.
	bad := wire.PacketFilter{Rules: []wire.FilterRule{{Sources: prefixes("100.64.0.4/32"), Proto: "sctp"}}}
	if err := fw.Apply("wt1", self, bad); err == nil {
		t.Error("Apply accepted protocol sctp")
	}
	if err := fw.Apply("wt1\"; flush ruleset", self, second); err == nil {
		t.Error("Apply accepted a hostile interface name")
	}
	if after := ns.nftList(t, "table", "inet", "weft"); after != got {
		t.Errorf("a refused Apply changed the table:\n%s", after)
	}

	// IPv6: the kernel takes the same shapes with 16-byte keys.
	if err := fw.Apply("wt0", netip.MustParseAddr("fd7a::9"), wire.PacketFilter{Rules: []wire.FilterRule{
		{Sources: prefixes("fd7a::1/128", "fd7a::2/127", "100.64.0.1/32"), Proto: "icmp"},
		{Sources: prefixes("fd7a::5/128"), Proto: "udp", Ports: []wire.PortRange{{First: 53, Last: 53}}},
	}}); err != nil {
		t.Fatal(err)
	}
	got6 := ns.nftList(t, "table", "inet", "weft")
	for _, line := range []string{
		"ip6 saddr { fd7a::1-fd7a::3 } ip6 daddr fd7a::9 icmpv6 type echo-request accept",
		"ip6 saddr fd7a::5 ip6 daddr fd7a::9 udp dport 53 accept",
	} {
		if !strings.Contains(got6, line) {
			t.Errorf("IPv6 rules: missing %q in:\n%s", line, got6)
		}
	}

	// Default allow: no final drop.
	if err := fw.Apply("wt0", self, wire.PacketFilter{DefaultAllow: true}); err != nil {
		t.Fatal(err)
	}
	if got := ns.nftList(t, "table", "inet", "weft"); strings.Contains(got, "\t\tdrop\n") || strings.Contains(got, "accept\n\t\tip") {
		t.Errorf("default allow still drops or filters:\n%s", got)
	}

	// A gateway: forwarded traffic its gateway table governs passes under a deny policy,
	// and the filter of later Applys keeps it.
	gw := Forwarding{Mesh: netip.MustParsePrefix("100.64.0.0/10"), Routes: prefixes("192.168.7.0/24", "10.0.0.0/8"),
		Virtual: []netip.Addr{netip.MustParseAddr("100.64.0.30")}}
	if err := fw.SetForwarding(gw); err != nil {
		t.Fatal(err)
	}
	if err := fw.Apply("wt0", self, second); err != nil {
		t.Fatal(err)
	}
	wantFwd := `	chain tunnel_fwd {
		ct state established,related accept
		oifname != "wt0" ip saddr 100.64.0.0/10 ip daddr { 10.0.0.0/8, 192.168.7.0/24 } accept
		ct original ip daddr 100.64.0.30 accept
		drop
	}
`
	if got := ns.nftList(t, "table", "inet", "weft"); !strings.Contains(got, wantFwd) {
		t.Errorf("forwarding:\n%s\nwant it to hold:\n%s", got, wantFwd)
	}
	withFwd := ns.nftList(t, "table", "inet", "weft")
	if err := fw.SetForwarding(Forwarding{Mesh: netip.MustParsePrefix("100.64.0.0/10"), Virtual: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}); err == nil {
		t.Error("SetForwarding accepted a virtual device outside the mesh")
	}
	if after := ns.nftList(t, "table", "inet", "weft"); after != withFwd {
		t.Errorf("a refused SetForwarding changed the table:\n%s", after)
	}
	if err := fw.SetForwarding(Forwarding{}); err != nil {
		t.Fatal(err)
	}
	if got := ns.nftList(t, "table", "inet", "weft"); !strings.Contains(got, "chain tunnel_fwd {\n\t\tct state established,related accept\n\t\tdrop\n\t}") {
		t.Errorf("forwarding not withdrawn:\n%s", got)
	}

	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := fw.Apply("wt0", self, second); err == nil {
		t.Error("Apply after Close succeeded")
	}
	if got, want := ns.nftList(t, "ruleset"), other; got != want {
		t.Errorf("after Close the ruleset is\n%s\nwant only the other tables:\n%s", got, want)
	}
}

// TestNFTFirewallCloseWithoutApply: Close works when nothing was installed.
func TestNFTFirewallCloseWithoutApply(t *testing.T) {
	needRootAndNft(t)
	ns := newNetns(t, "close")
	fw, err := newNFTFirewall(quietLog(), "weft", nftables.WithNetNSFd(ns.fd))
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	if got := ns.nftList(t, "ruleset"); got != "" {
		t.Errorf("ruleset after Close: %q", got)
	}
}

// TestNFTFirewallTraffic sends real TCP connections through the rules: a veth pair stands
// in for the tunnel, namespace "dev" is the filtered device and "peers" holds the peers'
// addresses.
func TestNFTFirewallTraffic(t *testing.T) {
	needRootAndNft(t)
	dev, peers := newNetns(t, "dev"), newNetns(t, "peers")
	run(t, "ip", "-n", dev.name, "link", "add", "wt0", "type", "veth", "peer", "name", "eth0", "netns", peers.name)
	run(t, "ip", "-n", dev.name, "addr", "add", "100.64.0.9/24", "dev", "wt0")
	run(t, "ip", "-n", dev.name, "link", "set", "wt0", "up")
	run(t, "ip", "-n", peers.name, "addr", "add", "100.64.0.1/24", "dev", "eth0")
	run(t, "ip", "-n", peers.name, "addr", "add", "100.64.0.2/24", "dev", "eth0")
	run(t, "ip", "-n", peers.name, "link", "set", "eth0", "up")

	// Listeners on the device; each echoes one line per connection.
	for _, port := range []int{22, 23} {
		var ln net.Listener
		var err error
		dev.do(t, func() { ln, err = net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", port)) })
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
				go func() { defer c.Close(); io.Copy(c, c) }()
			}
		}()
	}

	fw, err := newNFTFirewall(quietLog(), "weft", nftables.WithNetNSFd(dev.fd))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fw.Close() })
	self := netip.MustParseAddr("100.64.0.9")
	peer1, peer2 := "100.64.0.1", "100.64.0.2"

	// dial connects from a peer address to the device; blocked connections time out
	// because the SYN is dropped.
	dial := func(from string, port int) (net.Conn, error) {
		var c net.Conn
		var err error
		peers.do(t, func() {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 500 * time.Millisecond}
			c, err = d.DialContext(context.Background(), "tcp", fmt.Sprintf("100.64.0.9:%d", port))
		})
		return c, err
	}
	expect := func(step, from string, port int, allowed bool) {
		t.Helper()
		c, err := dial(from, port)
		if err == nil {
			c.Close()
		}
		switch {
		case allowed && err != nil:
			t.Errorf("%s: %s -> :%d refused: %v", step, from, port, err)
		case !allowed && err == nil:
			t.Errorf("%s: %s -> :%d connected, want it blocked", step, from, port)
		case !allowed && !isTimeout(err):
			t.Errorf("%s: %s -> :%d failed with %v, want a timeout (dropped SYN)", step, from, port, err)
		}
	}

	expect("no firewall", peer2, 23, true)

	only22from1 := wire.PacketFilter{Rules: []wire.FilterRule{
		{Sources: prefixes(peer1 + "/32"), Proto: "tcp", Ports: []wire.PortRange{{First: 22, Last: 22}}},
	}}
	if err := fw.Apply("wt0", self, only22from1); err != nil {
		t.Fatal(err)
	}
	expect("peer1 tcp/22", peer1, 22, true)
	expect("peer1 tcp/22", peer1, 23, false)
	expect("peer1 tcp/22", peer2, 22, false)

	// A connection opened now must survive a policy that no longer allows it to start.
	kept, err := dial(peer1, 22)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()

	only23from2 := wire.PacketFilter{Rules: []wire.FilterRule{
		{Sources: prefixes(peer2 + "/32"), Proto: "tcp", Ports: []wire.PortRange{{First: 20, Last: 30}}},
	}}
	if err := fw.Apply("wt0", self, only23from2); err != nil {
		t.Fatal(err)
	}
	expect("peer2 tcp/20-30", peer2, 23, true)
	expect("peer2 tcp/20-30", peer1, 22, false)
	kept.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := kept.Write([]byte("still here\n")); err != nil {
		t.Fatalf("established connection broken by reapply: %v", err)
	}
	buf := make([]byte, 11)
	if _, err := io.ReadFull(kept, buf); err != nil || string(buf) != "still here\n" {
		t.Fatalf("established connection broken by reapply: %q, %v", buf, err)
	}

	if err := fw.Apply("wt0", self, wire.PacketFilter{DefaultAllow: true}); err != nil {
		t.Fatal(err)
	}
	expect("default allow", peer1, 23, true)

	if err := fw.Apply("wt0", self, wire.PacketFilter{}); err != nil {
		t.Fatal(err)
	}
	expect("deny all", peer1, 22, false)
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	expect("closed", peer1, 22, true)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
