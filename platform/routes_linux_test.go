package platform

import (
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/weftmesh/weft/internal/netlab"
)

func TestLinuxRoutePlan(t *testing.T) {
	render := func(rules []linuxRule) string {
		var out []string
		for _, r := range rules {
			f := map[int]string{unix.AF_INET: "ipv4", unix.AF_INET6: "ipv6"}[r.family]
			out = append(out, f+" "+r.String())
		}
		return strings.Join(out, "\n")
	}
	for _, tt := range []struct {
		name    string
		routes  []netip.Prefix
		exclude []netip.Addr
		want    string
	}{
		{"nothing", nil, addrs("203.0.113.5"), ""},
		{"subnet", prefixes("10.9.0.0/16"), addrs("203.0.113.5", "10.9.1.1"), `ipv4 priority 5750 to 10.9.1.1/32 lookup 254
ipv4 priority 5760 to all lookup 254 suppress_prefixlength 0
ipv4 priority 5770 to all lookup 5757`},
		{"exit, both families", prefixes("0.0.0.0/0", "::/0"), addrs("203.0.113.5", "2001:db8::5", "198.51.100.9"), `ipv4 priority 5750 to 198.51.100.9/32 lookup 254
ipv4 priority 5750 to 203.0.113.5/32 lookup 254
ipv4 priority 5760 to all lookup 254 suppress_prefixlength 0
ipv4 priority 5770 to all lookup 5757
ipv6 priority 5750 to 2001:db8::5/128 lookup 254
ipv6 priority 5760 to all lookup 254 suppress_prefixlength 0
ipv6 priority 5770 to all lookup 5757`},
	} {
		s, err := checkRoutes("weft0", tt.routes, tt.exclude)
		if err != nil {
			t.Fatal(err)
		}
		rules, routes := linuxRoutePlan(s)
		if got := render(rules); got != tt.want {
			t.Errorf("%s: rules\n%s\nwant\n%s", tt.name, got, tt.want)
		}
		if len(routes) != len(s.routes) {
			t.Errorf("%s: table routes %v, want %v", tt.name, routes, s.routes)
		}
	}
}

// TestRouterLab sets routes on a client in a lab and checks what the kernel does with them:
//
//	client  eth0 on the home LAN 192.168.1.0/24 (printer, router to the internet: broker)
//	client  100.64.0.1 ──wt0 (a veth standing in for the tunnel)── 100.64.0.2 exit
//	exit    owns 10.9.0.1 (a network behind a gateway) and 198.51.100.7 ("the internet")
func TestRouterLab(t *testing.T) {
	lab := netlab.New(t, "router")
	_, lan := lab.AddRouterWith("home", lab.Internet(), netlab.RouterOptions{NAT: netlab.NATHome, LAN: netip.MustParsePrefix("192.168.1.0/24")})
	client := lab.AddHost("client", lan)
	printer := lab.AddHost("printer", lan)
	broker := lab.AddHost("broker", lab.Internet())
	exit := lab.AddHost("exit", lab.Internet())
	ipIn(t, client, "link", "add", "wt0", "type", "veth", "peer", "name", "wt0", "netns", exit.Netns())
	ipIn(t, client, "addr", "add", "100.64.0.1/10", "dev", "wt0")
	ipIn(t, client, "link", "set", "wt0", "up")
	ipIn(t, exit, "addr", "add", "100.64.0.2/10", "dev", "wt0")
	ipIn(t, exit, "link", "set", "wt0", "up")
	ipIn(t, exit, "addr", "add", "10.9.0.1/32", "dev", "lo")
	ipIn(t, exit, "addr", "add", "198.51.100.7/32", "dev", "lo")

	state := func() string {
		return ipIn(t, client, "rule", "show") + ipIn(t, client, "route", "show", "table", "all")
	}
	before := state()
	// routeVia is where the client's kernel sends dst: "wt0 5757" (the tunnel, weft's
	// table) or "eth0 main".
	routeVia := func(dst netip.Addr) string {
		f := strings.Fields(ipIn(t, client, "route", "get", dst.String()))
		dev, table := "", "main"
		for i := 0; i+1 < len(f); i++ {
			switch f[i] {
			case "dev":
				dev = f[i+1]
			case "table":
				table = f[i+1]
			}
		}
		return dev + " " + table
	}
	expectRoute := func(step string, dst netip.Addr, want string) {
		t.Helper()
		if got := routeVia(dst); got != want {
			t.Errorf("%s: route to %s goes %s, want %s", step, dst, got, want)
		}
	}
	expectPing := func(step string, dst netip.Addr) {
		t.Helper()
		if err := lab.Ping(client, dst); err != nil {
			t.Errorf("%s: ping %s: %v", step, dst, err)
		}
	}

	var r Router
	if err := inNamespace(t, client.Netns(), func() (err error) { r, err = NewRouter(quietLog()); return err }); err != nil {
		t.Fatal(err)
	}
	set := func(routes []netip.Prefix, exclude []netip.Addr) error {
		return inNamespace(t, client.Netns(), func() error { return r.SetRoutes("wt0", routes, exclude) })
	}
	t.Cleanup(func() { inNamespace(t, client.Netns(), r.Close) })
	subnet, internet := netip.MustParseAddr("10.9.0.1"), netip.MustParseAddr("198.51.100.7")

	// A subnet behind the gateway.
	if err := set(prefixes("10.9.0.0/24"), []netip.Addr{broker.Addr()}); err != nil {
		t.Fatal(err)
	}
	step := "subnet route"
	expectRoute(step, subnet, "wt0 5757")
	expectRoute(step, internet, "eth0 main")
	expectRoute(step, broker.Addr(), "eth0 main")
	expectPing(step, subnet)
	expectPing(step, broker.Addr())
	if rules := ipIn(t, client, "rule", "show"); strings.Contains(rules, broker.Addr().String()) {
		t.Errorf("%s: a rule for the broker, which no route covers:\n%s", step, rules)
	}

	// Exit node: everything but the LAN and the excluded broker goes through the tunnel.
	if err := set(prefixes("0.0.0.0/0", "10.9.0.0/24"), []netip.Addr{broker.Addr()}); err != nil {
		t.Fatal(err)
	}
	step = "exit node"
	expectRoute(step, subnet, "wt0 5757")
	expectRoute(step, internet, "wt0 5757")
	expectRoute(step, netip.MustParseAddr("203.0.113.250"), "wt0 5757") // the internet, not excluded
	expectRoute(step, broker.Addr(), "eth0 main")
	expectRoute(step, printer.Addr(), "eth0 main")
	expectRoute(step, netip.MustParseAddr("100.64.0.2"), "wt0 main") // the mesh itself
	expectPing(step, internet)
	expectPing(step, broker.Addr())
	expectPing(step, printer.Addr())
	rules := ipIn(t, client, "rule", "show")
	for _, want := range []string{
		"5750:\tfrom all to " + broker.Addr().String() + " lookup main",
		"5760:\tfrom all lookup main suppress_prefixlength 0",
		"5770:\tfrom all lookup 5757",
	} {
		if !strings.Contains(rules, want) {
			t.Errorf("%s: no rule %q in\n%s", step, want, rules)
		}
	}

	// Invalid input changes nothing; a missing interface is an error.
	afterExit := state()
	if err := set([]netip.Prefix{{}}, nil); err == nil {
		t.Error("SetRoutes accepted an invalid prefix")
	}
	if err := inNamespace(t, client.Netns(), func() error { return r.SetRoutes("nosuch0", prefixes("10.0.0.0/8"), nil) }); err == nil {
		t.Error("SetRoutes accepted a missing interface")
	}
	if got := state(); got != afterExit {
		t.Errorf("a refused SetRoutes changed the routes:\n%s\nwant\n%s", got, afterExit)
	}

	// Back to the subnet only: the exit and the broker's rule go.
	if err := set(prefixes("10.9.0.0/24"), []netip.Addr{broker.Addr()}); err != nil {
		t.Fatal(err)
	}
	step = "exit removed"
	expectRoute(step, internet, "eth0 main")
	expectRoute(step, subnet, "wt0 5757")
	if rules := ipIn(t, client, "rule", "show"); strings.Contains(rules, broker.Addr().String()) {
		t.Errorf("%s: the broker's rule is still there:\n%s", step, rules)
	}

	// Rules and routes a weftd that died left are taken over and removed.
	ipIn(t, client, "rule", "add", "priority", "5750", "to", "192.0.2.1", "lookup", "main")
	ipIn(t, client, "route", "add", "192.0.2.0/24", "dev", "wt0", "table", "5757")
	if err := set(prefixes("10.9.0.0/24"), nil); err != nil {
		t.Fatal(err)
	}
	if got := state(); strings.Contains(got, "192.0.2.") {
		t.Errorf("leftovers survived SetRoutes:\n%s", got)
	}

	if err := inNamespace(t, client.Netns(), r.Close); err != nil {
		t.Fatal(err)
	}
	if got := state(); got != before {
		t.Errorf("after Close:\n%s\nwant what was there before:\n%s", got, before)
	}
	if err := set(prefixes("10.9.0.0/24"), nil); err == nil {
		t.Error("SetRoutes after Close succeeded")
	}
}
