package platform

import (
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/netlab"
	"github.com/weftmesh/weft/wire"
)

// TestGatewayTraffic runs real connections through a gateway in a lab:
//
//	mesh  100.64.0.1 ──wt0 (a veth standing in for the tunnel)── 100.64.0.2 gw
//	gw    eth0 on the site LAN 192.168.1.0/24 (camera: 192.168.1.50, intruder)
//	gw    wan1 198.51.100.1 ──veth── 198.51.100.2 server
//
// The camera and the intruder route 100.64.0.0/10 to gw, as a static route on their
// router would.
func TestGatewayTraffic(t *testing.T) {
	if _, err := exec.LookPath("conntrack"); err != nil {
		t.Skip("needs conntrack (Debian package conntrack)")
	}
	lab := netlab.New(t, "gateway")
	_, lan := lab.AddRouterWith("site", lab.Internet(), netlab.RouterOptions{NAT: netlab.NATHome, LAN: netip.MustParsePrefix("192.168.1.0/24")})
	gw := lab.AddHost("gw", lan)
	camera := lab.AddHost("camera", lan)
	intruder := lab.AddHost("intruder", lan)
	mesh := lab.AddHost("mesh", lab.Internet())
	server := lab.AddHost("server", lab.Internet())

	ipIn(t, mesh, "link", "add", "wt0", "type", "veth", "peer", "name", "wt0", "netns", gw.Netns())
	ipIn(t, gw, "addr", "add", "100.64.0.2/10", "dev", "wt0")
	ipIn(t, gw, "link", "set", "wt0", "up")
	ipIn(t, mesh, "addr", "add", "100.64.0.1/32", "dev", "wt0")
	ipIn(t, mesh, "link", "set", "wt0", "up")
	ipIn(t, mesh, "route", "add", "100.64.0.2/32", "dev", "wt0")
	for _, dst := range []string{"100.64.0.0/10", "198.51.100.0/24", "192.168.1.0/24"} {
		ipIn(t, mesh, "route", "add", dst, "via", "100.64.0.2", "dev", "wt0")
	}
	ipIn(t, gw, "link", "add", "wan1", "type", "veth", "peer", "name", "wan1", "netns", server.Netns())
	ipIn(t, gw, "addr", "add", "198.51.100.1/24", "dev", "wan1")
	ipIn(t, gw, "link", "set", "wan1", "up")
	ipIn(t, server, "addr", "add", "198.51.100.2/24", "dev", "wan1")
	ipIn(t, server, "link", "set", "wan1", "up")
	ipIn(t, camera, "addr", "add", "192.168.1.50/24", "dev", "eth0")
	ipIn(t, camera, "route", "add", "100.64.0.0/10", "via", gw.Addr().String(), "src", "192.168.1.50")
	ipIn(t, intruder, "route", "add", "100.64.0.0/10", "via", gw.Addr().String())

	serveWhoAmI(t, server, "0.0.0.0:8080")
	serveWhoAmI(t, camera, "0.0.0.0:554")
	serveWhoAmI(t, camera, "0.0.0.0:80")
	serveWhoAmI(t, mesh, "0.0.0.0:7000")

	rulesetBefore := cmdIn(t, gw, "nft", "list", "ruleset")
	forwarding := func() string { return strings.TrimSpace(cmdIn(t, gw, "cat", "/proc/sys/net/ipv4/ip_forward")) }
	if got := forwarding(); got != "0" {
		t.Fatalf("ip_forward in a new namespace is %s", got)
	}

	var g Gateway
	if err := inNamespace(t, gw.Netns(), func() (err error) { g, err = NewGateway(quietLog()); return err }); err != nil {
		t.Fatal(err)
	}
	apply := func(cfg GatewayConfig) error {
		return inNamespace(t, gw.Netns(), func() error { return g.Apply(cfg) })
	}
	t.Cleanup(func() { inNamespace(t, gw.Netns(), g.Close) })

	gwLAN := gw.Addr().String()
	secure := netip.MustParseAddr("100.64.0.99")
	cfg := GatewayConfig{
		TunnelIface: "wt0",
		MeshPrefix:  netip.MustParsePrefix("100.64.0.0/10"),
		Self:        netip.MustParseAddr("100.64.0.2"),
		Routes:      prefixes("198.51.100.0/24"),
		Virtual: []VirtualDevice{{SecureIP: secure, LANIP: netip.MustParseAddr("192.168.1.50"),
			Filter: wire.PacketFilter{DefaultAllow: true}}},
	}
	if err := apply(cfg); err != nil {
		t.Fatal(err)
	}
	if got := forwarding(); got != "1" {
		t.Errorf("ip_forward after Apply is %s", got)
	}
	step := "subnet route and camera"
	expectSeenAs(t, step, mesh, "198.51.100.2:8080", "198.51.100.1")
	expectSeenAs(t, step, mesh, "100.64.0.99:554", gwLAN)
	expectSeenAs(t, step, mesh, "100.64.0.99:80", gwLAN)
	expectSeenAs(t, step, gw, "100.64.0.99:554", gwLAN) // the gateway itself, by SecureIP
	expectSeenAs(t, step, camera, "100.64.0.1:7000", "100.64.0.99")
	expectBlocked(t, step, intruder, "100.64.0.1:7000")
	expectBlocked(t, step, mesh, camera.Addr().String()+":554") // the LAN is not a served route

	// Exit node, and the camera's policy now allows only tcp/554 from the mesh host.
	cfg.Routes = prefixes("0.0.0.0/0")
	cfg.Virtual[0].Filter = wire.PacketFilter{Rules: []wire.FilterRule{
		{Sources: prefixes("100.64.0.1/32"), Proto: wire.ProtoTCP, Ports: []wire.PortRange{{First: 554, Last: 554}}},
	}}
	if err := apply(cfg); err != nil {
		t.Fatal(err)
	}
	step = "exit node and filtered camera"
	expectSeenAs(t, step, mesh, "198.51.100.2:8080", "198.51.100.1")
	expectSeenAs(t, step, mesh, camera.Addr().String()+":554", gwLAN) // everything is routed now
	expectSeenAs(t, step, mesh, "100.64.0.99:554", gwLAN)
	expectBlocked(t, step, mesh, "100.64.0.99:80")
	expectSeenAs(t, step, camera, "100.64.0.1:7000", "100.64.0.99")
	expectBlocked(t, step, intruder, "100.64.0.1:7000")
	expectBlocked(t, step, gw, "100.64.0.99:554") // the gateway is a mesh source like any other

	// Removing the camera and the exit route cuts their flows (the connections above
	// left conntrack entries) and stops new ones.
	flows := func(args ...string) int {
		t.Helper()
		out, _ := gw.Run(t.Context(), append([]string{"conntrack", "-L"}, args...)...)
		m := regexp.MustCompile(`(\d+) flow entries have been shown`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("conntrack -L %s: %s", strings.Join(args, " "), out)
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	if flows("-d", "100.64.0.99") == 0 || flows("-d", "198.51.100.2") == 0 {
		t.Fatal("no conntrack entries for the camera or the server: the test cannot see them cut")
	}
	cfg.Routes, cfg.Virtual = prefixes("10.99.0.0/16"), nil
	if err := apply(cfg); err != nil {
		t.Fatal(err)
	}
	if n, m := flows("-d", "100.64.0.99"), flows("-d", "198.51.100.2"); n != 0 || m != 0 {
		t.Errorf("after removal: %d flows to the camera, %d to the server are left", n, m)
	}
	step = "camera and exit removed"
	expectBlocked(t, step, mesh, "100.64.0.99:554")
	expectBlocked(t, step, mesh, "198.51.100.2:8080")
	expectBlocked(t, step, camera, "100.64.0.1:7000")

	// Nothing to serve: everything goes, and the gateway can start again.
	if err := apply(GatewayConfig{TunnelIface: "wt0", MeshPrefix: cfg.MeshPrefix, Self: cfg.Self}); err != nil {
		t.Fatal(err)
	}
	if got := cmdIn(t, gw, "nft", "list", "ruleset"); got != rulesetBefore || forwarding() != "0" {
		t.Errorf("after an empty Apply: ip_forward %s, ruleset:\n%s", forwarding(), got)
	}
	cfg.Routes = prefixes("198.51.100.0/24")
	if err := apply(cfg); err != nil {
		t.Fatal(err)
	}
	expectSeenAs(t, "routes again", mesh, "198.51.100.2:8080", "198.51.100.1")

	if err := inNamespace(t, gw.Netns(), g.Close); err != nil {
		t.Fatal(err)
	}
	if got := cmdIn(t, gw, "nft", "list", "ruleset"); got != rulesetBefore {
		t.Errorf("after Close the ruleset is\n%s\nwant\n%s", got, rulesetBefore)
	}
	if got := forwarding(); got != "0" {
		t.Errorf("ip_forward after Close is %s, want 0 restored", got)
	}
	if err := apply(cfg); err == nil {
		t.Error("Apply after Close succeeded")
	}
}

// TestNFTGatewayTable checks what the kernel holds after Apply, a refused Apply, reapply
// and Close, next to tables of others (the firewall's among them) that must not change.
func TestNFTGatewayTable(t *testing.T) {
	lab := netlab.New(t, "gwtable")
	h := lab.AddHost("gw", lab.Internet())
	ipIn(t, h, "link", "add", "wt0", "type", "veth", "peer", "name", "wt0peer")
	others := "table inet weft {\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tiifname \"wt0\" drop\n\t}\n}\ntable ip other {\n\tchain c {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\tmasquerade\n\t}\n}\n"
	load := h.Command(t.Context(), "nft", "-f", "-")
	load.Stdin = strings.NewReader(others)
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("load other tables: %v\n%s", err, out)
	}

	var g Gateway
	if err := inNamespace(t, h.Netns(), func() (err error) { g, err = NewGateway(quietLog()); return err }); err != nil {
		t.Fatal(err)
	}
	apply := func(cfg GatewayConfig) error {
		return inNamespace(t, h.Netns(), func() error { return g.Apply(cfg) })
	}
	cfg := GatewayConfig{
		TunnelIface: "wt0",
		MeshPrefix:  netip.MustParsePrefix("100.64.0.0/10"),
		Self:        netip.MustParseAddr("100.64.0.2"),
		Routes:      prefixes("198.51.100.0/24", "10.1.0.0/16", "10.0.0.0/8", "::/0"),
		Virtual: []VirtualDevice{
			{SecureIP: netip.MustParseAddr("100.64.0.99"), LANIP: netip.MustParseAddr("192.168.1.50"), Filter: wire.PacketFilter{Rules: []wire.FilterRule{
				{Sources: prefixes("100.64.0.1/32"), Proto: wire.ProtoTCP, Ports: []wire.PortRange{{First: 554, Last: 554}}},
				{Sources: prefixes("100.64.0.1/32", "100.64.0.7/32"), Proto: wire.ProtoICMP},
			}}},
			{SecureIP: netip.MustParseAddr("100.64.0.98"), LANIP: netip.MustParseAddr("192.168.1.51"), Filter: wire.PacketFilter{DefaultAllow: true}},
		},
	}
	if err := apply(cfg); err != nil {
		t.Fatal(err)
	}
	want := `table ip weft-gw {
	chain vdev_filter_in {
		type filter hook prerouting priority mangle; policy accept;
		iifname "wt0" ip daddr 100.64.0.99 jump vdev_100_64_0_99
	}

	chain vdev_filter_out {
		type filter hook output priority mangle; policy accept;
		ip daddr 100.64.0.99 jump vdev_100_64_0_99
	}

	chain vdev_100_64_0_99 {
		ct state established,related accept
		ct state invalid drop
		ip saddr 100.64.0.1 ip daddr 100.64.0.99 tcp dport 554 accept
		ip saddr { 100.64.0.1, 100.64.0.7 } ip daddr 100.64.0.99 icmp type echo-request accept
		drop
	}

	chain dnat_in {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "wt0" ip daddr 100.64.0.98 dnat to 192.168.1.51
		iifname "wt0" ip daddr 100.64.0.99 dnat to 192.168.1.50
	}

	chain dnat_out {
		type nat hook output priority -100; policy accept;
		ip daddr 100.64.0.98 dnat to 192.168.1.51
		ip daddr 100.64.0.99 dnat to 192.168.1.50
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		ct state established,related accept
		iifname "wt0" ct status dnat accept
		iifname "wt0" oifname != "wt0" ip saddr 100.64.0.0/10 ip daddr { 10.0.0.0/8, 198.51.100.0/24 } accept
		iifname "wt0" drop
		oifname "wt0" ip saddr { 192.168.1.50/31 } ip daddr 100.64.0.0/10 accept
		oifname "wt0" drop
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wt0" ip saddr 192.168.1.51 ip daddr 100.64.0.0/10 snat to 100.64.0.98
		oifname "wt0" ip saddr 192.168.1.50 ip daddr 100.64.0.0/10 snat to 100.64.0.99
		oifname "wt0" accept
		ip saddr 100.64.0.0/10 ct original ip daddr 100.64.0.98 masquerade
		ip saddr 100.64.0.0/10 ct original ip daddr 100.64.0.99 masquerade
		ip saddr 100.64.0.0/10 ip daddr { 10.0.0.0/8, 198.51.100.0/24 } masquerade
	}
}
`
	list := func() string { return cmdIn(t, h, "nft", "list", "table", "ip", "weft-gw") }
	if got := list(); got != want {
		t.Errorf("after Apply:\n%s\nwant:\n%s", got, want)
	}

	// Refused: the table stays as it was.
	bad := cfg
	bad.Virtual = append([]VirtualDevice{{SecureIP: netip.MustParseAddr("100.64.0.97"), LANIP: netip.MustParseAddr("192.168.1.50")}}, cfg.Virtual...)
	if err := apply(bad); err == nil {
		t.Error("Apply accepted two virtual devices on one LAN address")
	}
	bad = cfg
	bad.TunnelIface = `wt0"; flush ruleset`
	if err := apply(bad); err == nil {
		t.Error("Apply accepted a hostile interface name")
	}
	if got := list(); got != want {
		t.Errorf("a refused Apply changed the table:\n%s", got)
	}

	// Reapply: the new configuration replaces the old one entirely.
	cfg.TunnelIface, cfg.Routes, cfg.Virtual = "wt1", prefixes("0.0.0.0/0"), nil
	if err := apply(cfg); err != nil {
		t.Fatal(err)
	}
	got := list()
	for _, line := range []string{`iifname "wt1" oifname != "wt1" ip saddr 100.64.0.0/10 accept`, `ip saddr 100.64.0.0/10 masquerade`} {
		if !strings.Contains(got, line) {
			t.Errorf("after reapply, missing %q in:\n%s", line, got)
		}
	}
	for _, old := range []string{"wt0", "192.168.1.5", "vdev", "dnat to", "198.51.100"} {
		if strings.Contains(got, old) {
			t.Errorf("after reapply, %q of the first configuration is still there:\n%s", old, got)
		}
	}

	if err := inNamespace(t, h.Netns(), g.Close); err != nil {
		t.Fatal(err)
	}
	if err := inNamespace(t, h.Netns(), g.Close); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if got := cmdIn(t, h, "nft", "list", "ruleset"); got != others {
		t.Errorf("after Close the ruleset is\n%s\nwant only the others' tables:\n%s", got, others)
	}
}
