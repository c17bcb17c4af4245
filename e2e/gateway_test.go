//go:build linux

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/labrun"
	"github.com/weftmesh/weft/internal/netlab"
	"github.com/weftmesh/weft/wire"
)

// serveWhoami accepts TCP connections on addr inside h and answers each with the address
// the connection came from, as the server sees it, until the test ends.
func serveWhoami(t *testing.T, h *netlab.Host, addr string) {
	t.Helper()
	ln, err := h.Listen("tcp4", addr)
	if err != nil {
		t.Fatalf("listen on %s on %s: %v", addr, h.Name(), err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
			fmt.Fprintln(c, ap.Addr())
			c.Close()
		}
	}()
}

// whoami connects from h to addr and returns the source address the server saw.
func whoami(h *netlab.Host, addr string) (netip.Addr, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := h.Dial(ctx, "tcp4", addr)
	if err != nil {
		return netip.Addr{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && err != io.EOF {
		return netip.Addr{}, err
	}
	return netip.ParseAddr(strings.TrimSpace(line))
}

// seenAs waits until a connection from h to addr is answered and the server saw want as
// its source.
func seenAs(t *testing.T, h *netlab.Host, addr string, want netip.Addr) {
	t.Helper()
	labrun.Eventually(t, 20*time.Second, fmt.Sprintf("%s → %s seen as %s", h.Name(), addr, want), func() error {
		got, err := whoami(h, addr)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("seen as %s", got)
		}
		return nil
	})
}

// unreachable waits until a connection from h to addr fails.
func unreachable(t *testing.T, h *netlab.Host, addr string) {
	t.Helper()
	labrun.Eventually(t, 20*time.Second, fmt.Sprintf("%s cannot reach %s", h.Name(), addr), func() error {
		if got, err := whoami(h, addr); err == nil {
			return fmt.Errorf("connected, seen as %s", got)
		}
		return nil
	})
}

// hostRun runs a command in a lab host and returns its output, failing the test on error.
func hostRun(t *testing.T, h *netlab.Host, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := h.Run(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// gatewayTable is the gateway's nftables table (ip weft-gw) as nft lists it; "" when there
// is none.
func gatewayTable(t *testing.T, h *netlab.Host) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := h.Run(ctx, "nft", "list", "table", "ip", "weft-gw")
	if err != nil {
		if strings.Contains(string(out), "No such file or directory") {
			return ""
		}
		t.Fatal(err)
	}
	return string(out)
}

// routesAll is `ip route show table all` on h.
func routesAll(t *testing.T, h *netlab.Host) string {
	t.Helper()
	return hostRun(t, h, "ip", "route", "show", "table", "all")
}

// waitApproved waits until d's map shows gateway gw with route approved.
func waitApproved(t *testing.T, d *labrun.Device, gw string, route netip.Prefix) {
	t.Helper()
	labrun.Eventually(t, 20*time.Second, fmt.Sprintf("%s sees %s approved on %s", d.Name, route, gw), func() error {
		g, err := d.Gateways()
		if err != nil {
			return err
		}
		for _, info := range g.Gateways {
			if info.Name == gw && slices.Contains(info.Routes, route) {
				return nil
			}
		}
		return fmt.Errorf("gateways %+v", g.Gateways)
	})
}

// choiceActive waits until d's choice for route is (or is not) in use.
func choiceActive(t *testing.T, d *labrun.Device, route netip.Prefix, active bool) {
	t.Helper()
	labrun.Eventually(t, 20*time.Second, fmt.Sprintf("%s: %s in use = %v", d.Name, route, active), func() error {
		g, err := d.Gateways()
		if err != nil {
			return err
		}
		for _, c := range g.Choices {
			if c.Route == route {
				if c.Active != active {
					return fmt.Errorf("choice %+v", c)
				}
				return nil
			}
		}
		return fmt.Errorf("no choice for %s in %+v", route, g.Choices)
	})
}

// cliFails runs the weft CLI on d, expecting it to fail with a one-line error containing
// want (a usage error adds the usage line).
func cliFails(t *testing.T, d *labrun.Device, want string, args ...string) {
	t.Helper()
	out, err := d.CLI(args...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	oneLine := len(lines) == 1 || len(lines) == 2 && strings.HasPrefix(lines[1], "usage:")
	if err == nil || !strings.Contains(lines[0], want) || !oneLine {
		t.Errorf("weft %s on %s: err %v, output %q; want a one-line error with %q", strings.Join(args, " "), d.Name, err, out, want)
	}
}

var exitRoute = netip.MustParsePrefix("0.0.0.0/0")

// TestGatewayExitNode: a laptop behind a home router uses a device on the internet as
// its exit node: a web server sees the gateway's address, while the broker and the peers'
// tunnels stay outside the tunnel (the map keeps flowing, a new peer is reached directly).
// Unapproving the route removes the laptop's routes and the gateway's NAT; the choice
// survives a restart and comes back into use when approved again.
func TestGatewayExitNode(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, "exit")
	bins := labrun.Build(t)
	broker := labrun.StartBroker(t, bins, lab.AddHost("broker", lab.Internet()))
	key := broker.NewAccount("acme")
	web := lab.AddHost("web", lab.Internet())
	webAddr := net.JoinHostPort(web.Addr().String(), "80")
	serveWhoami(t, web, ":80")
	home, homeLAN := lab.AddRouter("home", lab.Internet(), netlab.NATHome)
	laptop := labrun.StartDevice(t, bins, lab.AddHost("laptop", homeLAN), "laptop")
	gw := labrun.StartDevice(t, bins, lab.AddHost("gw", lab.Internet()), "gw")
	laptop.Up(broker, key)
	gw.Up(broker, key)
	meshed(t, laptop, gw)
	seenAs(t, laptop.Host, webAddr, home.Addr())

	// Advertised is not approved: the laptop cannot use it yet, and nothing changes.
	if out := gw.MustCLI("gateway", "advertise", "0.0.0.0/0"); !strings.Contains(out, "waiting for approval: 0.0.0.0/0") {
		t.Errorf("advertise printed %q", out)
	}
	labrun.Eventually(t, 20*time.Second, "laptop sees gw advertise", func() error {
		g, err := laptop.Gateways()
		if err != nil {
			return err
		}
		if len(g.Gateways) != 1 || !slices.Equal(g.Gateways[0].Advertised, []netip.Prefix{exitRoute}) {
			return fmt.Errorf("gateways %+v", g.Gateways)
		}
		return nil
	})
	cliFails(t, laptop, "gw has no approved routes", "gateway", "use", "gw")
	cliFails(t, laptop, `no device "nosuch"`, "gateway", "use", "nosuch")
	if g, err := laptop.Gateways(); err != nil || len(g.Choices) != 0 {
		t.Fatalf("refused uses left choices %+v (%v)", g.Choices, err)
	}

	broker.MustAdmin("route", "approve", "acme", "gw", "0.0.0.0/0")
	waitApproved(t, laptop, "gw", exitRoute)
	cliFails(t, laptop, "route 10.0.0.0/8 of gw is not approved", "gateway", "use", "gw", "--route", "10.0.0.0/8")
	if out := laptop.MustCLI("gateway", "use", "gw"); !strings.Contains(out, "0.0.0.0/0 (exit) via gw (in use)") {
		t.Errorf("gateway use printed %q", out)
	}
	seenAs(t, laptop.Host, webAddr, gw.Host.Addr())
	if r := routesAll(t, laptop.Host); !strings.Contains(r, "default dev weft0 table 5757") {
		t.Errorf("laptop's routes lack the exit route:\n%s", r)
	}
	if nft := gatewayTable(t, gw.Host); !strings.Contains(nft, "masquerade") {
		t.Errorf("gw's gateway table has no masquerade:\n%s", nft)
	}
	out := laptop.MustCLI("status")
	for _, want := range []string{"gateways:\n  gw (", "0.0.0.0/0 (exit)", "routes through gateways:\n  0.0.0.0/0 (exit) via gw (in use)"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if list := laptop.MustCLI("gateway", "list"); !strings.Contains(list, "0.0.0.0/0 (exit)") || !strings.Contains(list, "yes") {
		t.Errorf("gateway list:\n%s", list)
	}

	// The control plane stays outside the tunnel: the broker connection holds, a device
	// joining shows up in the laptop's map and is reached directly, and its removal too.
	if !laptop.MustStatus().BrokerConnected {
		t.Errorf("laptop lost the broker with the exit node in use")
	}
	other := labrun.StartDevice(t, bins, lab.AddHost("other", lab.Internet()), "other")
	other.Up(broker, key)
	meshed(t, laptop, other)
	broker.MustAdmin("device", "remove", "acme", "other")
	labrun.Eventually(t, 20*time.Second, "laptop's map drops other", func() error {
		if names := peerNames(laptop.MustStatus()); slices.Contains(names, "other") {
			return fmt.Errorf("peers %v", names)
		}
		return nil
	})
	seenAs(t, laptop.Host, webAddr, gw.Host.Addr())

	// Unapproved: the route and the NAT go, the choice stays (not in use).
	broker.MustAdmin("route", "unapprove", "acme", "gw", "0.0.0.0/0")
	choiceActive(t, laptop, exitRoute, false)
	labrun.Eventually(t, 20*time.Second, "routes and NAT removed", func() error {
		if r := routesAll(t, laptop.Host); strings.Contains(r, "table 5757") {
			return fmt.Errorf("laptop still routes through the tunnel:\n%s", r)
		}
		if nft := gatewayTable(t, gw.Host); nft != "" {
			return fmt.Errorf("gw still has its gateway table:\n%s", nft)
		}
		return nil
	})
	seenAs(t, laptop.Host, webAddr, home.Addr())

	// The choice is kept in state.json across a restart and is used once approved again.
	laptop.Stop()
	laptop.Start()
	broker.MustAdmin("route", "approve", "acme", "gw", "0.0.0.0/0")
	choiceActive(t, laptop, exitRoute, true)
	seenAs(t, laptop.Host, webAddr, gw.Host.Addr())

	// Down removes the routes; clear forgets the choice.
	laptop.MustCLI("down")
	if r := routesAll(t, laptop.Host); strings.Contains(r, "table 5757") {
		t.Errorf("routes left after weft down:\n%s", r)
	}
	laptop.MustCLI("up")
	choiceActive(t, laptop, exitRoute, true)
	if out := laptop.MustCLI("gateway", "clear"); !strings.Contains(out, "no route goes through a gateway now") {
		t.Errorf("gateway clear printed %q", out)
	}
	labrun.Eventually(t, 20*time.Second, "exit route cleared", func() error {
		if r := routesAll(t, laptop.Host); strings.Contains(r, "table 5757") {
			return fmt.Errorf("still routed:\n%s", r)
		}
		return nil
	})
	seenAs(t, laptop.Host, webAddr, home.Addr())
}

// TestGatewaySubnetRoute: a laptop reaches a plain host on the LAN behind a gateway by its
// LAN address once the route is approved and chosen; removing the gateway removes it all.
func TestGatewaySubnetRoute(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, "subnet")
	bins := labrun.Build(t)
	broker := labrun.StartBroker(t, bins, lab.AddHost("broker", lab.Internet()))
	key := broker.NewAccount("acme")
	_, officeLAN := lab.AddRouter("office", lab.Internet(), netlab.NATHome)
	gw := labrun.StartDevice(t, bins, lab.AddHost("gw", officeLAN), "gw")
	printer := lab.AddHost("printer", officeLAN)
	printerAddr := net.JoinHostPort(printer.Addr().String(), "9100")
	serveWhoami(t, printer, ":9100")
	laptop := labrun.StartDevice(t, bins, lab.AddHost("laptop", lab.Internet()), "laptop")
	gw.Up(broker, key)
	laptop.Up(broker, key)
	meshed(t, laptop, gw)
	lan := officeLAN.Prefix()

	unreachable(t, laptop.Host, printerAddr)
	gw.MustCLI("gateway", "advertise", lan.String())
	cliFails(t, laptop, "gw has no approved routes", "gateway", "use", "gw", "--route", lan.String())
	broker.MustAdmin("route", "approve", "acme", "gw", lan.String())
	waitApproved(t, laptop, "gw", lan)
	laptop.MustCLI("gateway", "use", "gw", "--route", lan.String())
	// The printer sees the gateway's LAN address: the gateway masquerades.
	seenAs(t, laptop.Host, printerAddr, gw.Host.Addr())
	if r := routesAll(t, laptop.Host); !strings.Contains(r, lan.String()+" dev weft0 table 5757") {
		t.Errorf("laptop's routes lack %s:\n%s", lan, r)
	}
	if nft := gatewayTable(t, gw.Host); !strings.Contains(nft, lan.String()) {
		t.Errorf("gw's gateway table lacks %s:\n%s", lan, nft)
	}
	if !strings.Contains(laptop.MustCLI("status"), lan.String()+" via gw (in use)") {
		t.Errorf("status does not show the route in use:\n%s", laptop.MustCLI("status"))
	}

	// Removing the gateway device removes its route at the laptop and its rules on it.
	broker.MustAdmin("device", "remove", "acme", "gw")
	choiceActive(t, laptop, lan, false)
	labrun.Eventually(t, 20*time.Second, "route and NAT gone with the gateway", func() error {
		if r := routesAll(t, laptop.Host); strings.Contains(r, lan.String()) {
			return fmt.Errorf("laptop still routes %s:\n%s", lan, r)
		}
		if nft := gatewayTable(t, gw.Host); nft != "" {
			return fmt.Errorf("removed gw keeps its gateway table:\n%s", nft)
		}
		return nil
	})
	unreachable(t, laptop.Host, printerAddr)
}

// TestGatewayConflictingSubnets: two sites both use 192.168.1.0/24, each with a camera at
// 192.168.1.50 that runs no weft. Each site's gateway projects its camera into the mesh as
// a virtual device; the other site reaches it by SecureIP and by name. A camera with a
// static route to the mesh reaches a mesh device, which sees its SecureIP; an unregistered
// LAN address cannot. A deny policy allowing only tcp/554 to the cameras applies to them
// like to any device. Removing a virtual device removes its NAT rules.
func TestGatewayConflictingSubnets(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, "sites")
	bins := labrun.Build(t)
	broker := labrun.StartBroker(t, bins, lab.AddHost("broker", lab.Internet()))
	key := broker.NewAccount("acme")
	lanRange := netip.MustParsePrefix("192.168.1.0/24")
	camIP := netip.MustParseAddr("192.168.1.50")
	_, lanA := lab.AddRouterWith("sitea", lab.Internet(), netlab.RouterOptions{NAT: netlab.NATHome, LAN: lanRange})
	_, lanB := lab.AddRouterWith("siteb", lab.Internet(), netlab.RouterOptions{NAT: netlab.NATHome, LAN: lanRange})
	gwA := labrun.StartDevice(t, bins, lab.AddHost("gwa", lanA), "gwa")
	gwB := labrun.StartDevice(t, bins, lab.AddHost("gwb", lanB), "gwb")
	camA, camB := lab.AddHost("cama", lanA), lab.AddHost("camb", lanB)
	lanpc := lab.AddHost("lanpc", lanA) // on site A's LAN, not registered
	for _, cam := range []*netlab.Host{camA, camB} {
		hostRun(t, cam, "ip", "addr", "add", camIP.String()+"/24", "dev", "eth0")
		serveWhoami(t, cam, camIP.String()+":554")
		serveWhoami(t, cam, camIP.String()+":80")
	}
	gwA.Up(broker, key)
	gwB.Up(broker, key)
	selves := meshed(t, gwA, gwB)

	// Bad input is refused with one line and registers nothing.
	cliFails(t, gwA, "inside the mesh range", "vdev", "add", "cama", "--lan-ip", "100.64.0.9")
	cliFails(t, gwA, "not an IP address", "vdev", "add", "cama", "--lan-ip", "camera")
	if v, err := gwA.VirtualDevices(); err != nil || len(v) != 0 {
		t.Fatalf("refused adds registered %v (%v)", v, err)
	}
	for _, g := range []*labrun.Device{gwA, gwB} {
		name := "cam" + strings.TrimPrefix(g.Name, "gw")
		if out := g.MustCLI("vdev", "add", name, "--lan-ip", camIP.String()); !strings.Contains(out, "LAN IP 192.168.1.50") {
			t.Errorf("vdev add printed %q", out)
		}
	}
	vdevs := map[string]wire.Device{}
	for _, g := range []*labrun.Device{gwA, gwB} {
		labrun.Eventually(t, 20*time.Second, g.Name+" lists its camera", func() error {
			v, err := g.VirtualDevices()
			if err != nil || len(v) != 1 || v[0].LANIP != camIP {
				return fmt.Errorf("vdevs %+v (%v)", v, err)
			}
			vdevs[v[0].Name] = v[0]
			return nil
		})
	}
	camASecure, camBSecure := vdevs["cama"].Address, vdevs["camb"].Address
	if camASecure == camBSecure || !meshRange.Contains(camASecure) || !meshRange.Contains(camBSecure) {
		t.Fatalf("cameras' SecureIPs %s and %s", camASecure, camBSecure)
	}

	// Mesh device → virtual device, both ways, by SecureIP: the camera sees its own
	// gateway's LAN address.
	seenAs(t, gwA.Host, net.JoinHostPort(camBSecure.String(), "554"), gwB.Host.Addr())
	seenAs(t, gwB.Host, net.JoinHostPort(camASecure.String(), "554"), gwA.Host.Addr())
	// ... and by name, through the broker's DNS.
	dns := broker.Host.Addr().String()
	for _, c := range []struct {
		from *labrun.Device
		name string
		want netip.Addr
		gw   netip.Addr
	}{{gwA, "camb.acme.weft.test", camBSecure, gwB.Host.Addr()}, {gwB, "cama.acme.weft.test", camASecure, gwA.Host.Addr()}} {
		status, answer := dig(t, c.from.Host, dns, c.name)
		if status != "NOERROR" || answer != c.want.String() {
			t.Fatalf("dig %s: %s %q, want %s", c.name, status, answer, c.want)
		}
		seenAs(t, c.from.Host, net.JoinHostPort(answer, "554"), c.gw)
	}
	out := gwA.MustCLI("status")
	for _, want := range []string{"virtual devices:", "cama", camASecure.String(), "via gwa (this device)", "LAN 192.168.1.50", "camb", "via gwb"} {
		if !strings.Contains(out, want) {
			t.Errorf("gwa's status lacks %q:\n%s", want, out)
		}
	}

	// LAN device → mesh device: a static route on the camera sends the mesh range to its
	// gateway; the mesh device sees the camera's SecureIP. An unregistered LAN address is
	// not forwarded.
	serveWhoami(t, gwB.Host, ":7000")
	meshB := net.JoinHostPort(selves["gwb"].Address.String(), "7000")
	hostRun(t, camA, "ip", "route", "add", meshRange.String(), "via", gwA.Host.Addr().String(), "src", camIP.String())
	hostRun(t, lanpc, "ip", "route", "add", meshRange.String(), "via", gwA.Host.Addr().String())
	seenAs(t, camA, meshB, camASecure)
	unreachable(t, lanpc, meshB)
	// Two devices that cannot run weft talk through the mesh: camera A reaches camera B by
	// its SecureIP, and camera B sees camera A's.
	seenAs(t, camA, net.JoinHostPort(camBSecure.String(), "554"), gwB.Host.Addr())

	// Policies apply to virtual devices: deny all but tcp/554 from the gateways to the
	// cameras.
	broker.MustAdmin("policy", "set", "acme", writePolicy(t, `{"default":"deny",
 "rules":[{"from":["gwa"],"to":["camb"],"ports":["tcp/554"]},{"from":["gwb"],"to":["cama"],"ports":["tcp/554"]}]}`))
	unreachable(t, gwA.Host, net.JoinHostPort(camBSecure.String(), "80"))
	seenAs(t, gwA.Host, net.JoinHostPort(camBSecure.String(), "554"), gwB.Host.Addr())
	seenAs(t, gwB.Host, net.JoinHostPort(camASecure.String(), "554"), gwA.Host.Addr())
	unreachable(t, camA, meshB)
	if nft := gatewayTable(t, gwB.Host); !strings.Contains(nft, "tcp dport 554") {
		t.Errorf("gwb's gateway table does not filter camb:\n%s", nft)
	}
	broker.MustAdmin("policy", "set", "acme", writePolicy(t, `{"default":"allow"}`))

	// Removing a virtual device removes its NAT rules on its gateway and its address
	// everywhere.
	seenAs(t, gwA.Host, net.JoinHostPort(camBSecure.String(), "80"), gwB.Host.Addr())
	if out := gwB.MustCLI("vdev", "remove", "camb"); !strings.Contains(out, "removed virtual device camb") {
		t.Errorf("vdev remove printed %q", out)
	}
	cliFails(t, gwB, "camb", "vdev", "remove", "camb")
	labrun.Eventually(t, 20*time.Second, "camb's rules and address gone", func() error {
		if nft := gatewayTable(t, gwB.Host); nft != "" {
			return fmt.Errorf("gwb keeps its gateway table:\n%s", nft)
		}
		for _, p := range gwA.MustStatus().Peers {
			if p.Name == "camb" {
				return fmt.Errorf("gwa still sees camb")
			}
		}
		return nil
	})
	unreachable(t, gwA.Host, net.JoinHostPort(camBSecure.String(), "554"))
	if status, _ := dig(t, gwA.Host, dns, "camb.acme.weft.test"); status != "NXDOMAIN" {
		t.Errorf("camb still resolves: %s", status)
	}
	// Site A's camera is still served.
	seenAs(t, gwB.Host, net.JoinHostPort(camASecure.String(), "554"), gwA.Host.Addr())
}
