package service

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/weftmesh/weft/ipc"
	"github.com/weftmesh/weft/mesh/control/controltest"
	"github.com/weftmesh/weft/platform"
	"github.com/weftmesh/weft/wire"
)

// allowedIPs are the allowed IPs the engine has for key.
func (e *fakeEngine) allowedIPs(k wire.Key) []netip.Prefix {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.peers {
		if p.PublicKey == k {
			return slices.Clone(p.AllowedIPs)
		}
	}
	return nil
}

// lastForwarding is what the firewall was last told to let through.
func (f *fakeFirewall) lastForwarding() platform.Forwarding {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.forwarding) == 0 {
		return platform.Forwarding{}
	}
	return f.forwarding[len(f.forwarding)-1]
}

func (h *harness) waitNet(what string, want ...string) {
	h.t.Helper()
	var got []string
	waitFor(h.t, what, func() bool {
		got = append(got, h.net.take()...)
		for _, w := range want {
			if !slices.ContainsFunc(got, func(e string) bool { return strings.HasPrefix(e, w) }) {
				return false
			}
		}
		return true
	})
}

// TestDaemonGateways drives gateway choices and the gateway role through the local API
// against a fake broker: choices validate, persist and follow the map into allowed IPs and
// routes; this device's own approved routes and virtual devices make it a gateway.
func TestDaemonGateways(t *testing.T) {
	b := controltest.NewBroker(t)
	gw := dev(t, "g", "gw", "100.64.0.50", "198.51.100.50:51820")
	gw.Advertised, gw.Routes = pfx("0.0.0.0/0", "10.1.0.0/16", "10.2.0.0/16"), pfx("0.0.0.0/0", "10.1.0.0/16")
	cam := vdev("c", "cam", "100.64.0.60", "g")
	deltas := make(chan wire.MapUpdate, 4)
	b.OnStream(func(n int, s *controltest.Stream) {
		self := s.Device
		self.Advertised, self.Routes = pfx("192.168.9.0/24"), pfx("192.168.9.0/24")
		printer := vdev("v", "printer", "100.64.0.61", self.ID)
		printer.LANIP, printer.VirtualFilter = netip.MustParseAddr("192.168.9.7"), &wire.PacketFilter{DefaultAllow: true}
		s.Send(wire.MapUpdate{Full: true, Self: &self, Peers: []wire.Device{gw, cam, printer}, Filter: &wire.PacketFilter{DefaultAllow: true}})
		for {
			select {
			case u := <-deltas:
				s.Send(u)
			case <-s.Done():
				return
			}
		}
	})
	dir := t.TempDir()
	h := startDaemon(t, dir)
	ctx := context.Background()

	if _, err := h.client.Gateways(ctx); err == nil || !strings.Contains(err.Error(), "not logged in") {
		t.Fatalf("gateways before login: %v", err)
	}
	if _, err := h.client.Up(ctx, wire.UpRequest{Broker: b.URL, CAPEM: b.CAPEM, AuthKey: controltest.GoodAuthKey, Name: "laptop"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "running", func() bool { return h.status().State == wire.StateRunning })

	// The gateway role: own approved routes and virtual devices, rules before forwarding.
	h.waitNet("gateway role", "new gateway", "gateway weft-test self 100.64.0.1 routes [192.168.9.0/24] virtual [100.64.0.61=192.168.9.7]")
	waitFor(t, "firewall lets the gateway's traffic through", func() bool {
		f := h.firewall().lastForwarding()
		return slices.Equal(f.Routes, pfx("192.168.9.0/24")) && slices.Equal(f.Virtual, []netip.Addr{netip.MustParseAddr("100.64.0.61")})
	})
	eng := h.engine()
	// Virtual devices behind a peer are reachable through it, always.
	if got := eng.allowedIPs(gw.PublicKey); !slices.Equal(got, pfx("100.64.0.50/32", "100.64.0.60/32")) {
		t.Errorf("gw's allowed IPs %v", got)
	}

	// Refused choices change nothing.
	for _, c := range []struct {
		req  wire.GatewayUseRequest
		code int
	}{
		{wire.GatewayUseRequest{Gateway: "nosuch"}, http.StatusNotFound},
		{wire.GatewayUseRequest{Gateway: "gw", Route: netip.MustParsePrefix("10.2.0.0/16")}, http.StatusConflict},
		{wire.GatewayUseRequest{Gateway: "cam"}, http.StatusBadRequest},
	} {
		_, err := h.client.UseGateway(ctx, c.req)
		var apiErr *ipc.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != c.code || strings.Contains(apiErr.Message, "\n") {
			t.Errorf("use %+v: %v, want %d", c.req, err, c.code)
		}
	}
	store, _ := OpenStore(dir)
	if s, _, _ := store.Load(); len(s.GatewayRoutes) != 0 {
		t.Fatalf("refused choices saved: %v", s.GatewayRoutes)
	}

	// Use all of gw's approved routes: allowed IPs, routes (the broker, the relays and
	// the peers' endpoints kept outside), state.json and status follow.
	g, err := h.client.UseGateway(ctx, wire.GatewayUseRequest{Gateway: "gw"})
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Choices) != 2 || !g.Choices[0].Active || !g.Choices[1].Active || len(g.Gateways) != 1 ||
		!slices.Equal(g.Gateways[0].Using, pfx("0.0.0.0/0", "10.1.0.0/16")) {
		t.Fatalf("after use: %+v", g)
	}
	if got := eng.allowedIPs(gw.PublicKey); !slices.Equal(got, pfx("100.64.0.50/32", "0.0.0.0/0", "10.1.0.0/16", "100.64.0.60/32")) {
		t.Errorf("gw's allowed IPs %v", got)
	}
	h.waitNet("routes through gw", "new router", "routes weft-test [0.0.0.0/0 10.1.0.0/16] exclude [127.0.0.1 198.51.100.50]")
	if s, _, _ := store.Load(); len(s.GatewayRoutes) != 2 {
		t.Fatalf("choices not saved: %v", s.GatewayRoutes)
	}
	if st := h.status(); len(st.GatewayRoutes) != 2 || st.GatewayRoutes[0].GatewayName != "gw" {
		t.Errorf("status gateway routes %+v", st.GatewayRoutes)
	}

	// The broker unapproves 10.1.0.0/16: it leaves the routes and allowed IPs, the choice stays.
	gw2 := gw
	gw2.Routes = pfx("0.0.0.0/0")
	deltas <- wire.MapUpdate{Peers: []wire.Device{gw2}}
	h.waitNet("unapproved route removed", "routes weft-test [0.0.0.0/0] exclude")
	st := h.status()
	if len(st.GatewayRoutes) != 2 || st.GatewayRoutes[1].Active || !strings.Contains(st.GatewayRoutes[1].Reason, "not approved") {
		t.Errorf("status after unapproval %+v", st.GatewayRoutes)
	}
	if got := eng.allowedIPs(gw.PublicKey); !slices.Equal(got, pfx("100.64.0.50/32", "0.0.0.0/0", "100.64.0.60/32")) {
		t.Errorf("gw's allowed IPs after unapproval %v", got)
	}
	// Clearing the exit leaves nothing in use: the routes go.
	if g, err := h.client.ClearGateway(ctx, wire.GatewayClearRequest{Route: netip.MustParsePrefix("0.0.0.0/0")}); err != nil || len(g.Choices) != 1 {
		t.Fatalf("clear: %+v %v", g, err)
	}
	h.waitNet("routes removed", "routes close")
	if _, err := h.client.ClearGateway(ctx, wire.GatewayClearRequest{Route: netip.MustParsePrefix("0.0.0.0/0")}); err == nil {
		t.Error("clearing a route with no gateway chosen succeeded")
	}

	// The choice survives a restart and is used again once approved.
	h.shutdown()
	h = startDaemon(t, dir)
	// The saved map has 10.1.0.0/16 unapproved; the broker's full map approves it again.
	waitFor(t, "the kept choice in use after restart", func() bool {
		g, err := h.client.Gateways(ctx)
		return err == nil && len(g.Choices) == 1 && g.Choices[0].Route == netip.MustParsePrefix("10.1.0.0/16") && g.Choices[0].Active
	})
	h.waitNet("route back after restart", "routes weft-test [10.1.0.0/16]")

	// Down removes the routes and the gateway role.
	if _, err := h.client.Down(ctx); err != nil {
		t.Fatal(err)
	}
	fw := h.firewall()
	h.waitNet("all removed on down", "gateway close", "routes close")
	if f := fw.lastForwarding(); len(f.Routes) != 0 || len(f.Virtual) != 0 {
		t.Errorf("forwarding left on after down: %+v", f)
	}
}

// TestDaemonAdvertiseAndVDevs: advertising and virtual devices go to the broker; bad
// input is refused before it.
func TestDaemonAdvertiseAndVDevs(t *testing.T) {
	b := controltest.NewBroker(t)
	lan := netip.MustParsePrefix("192.168.1.0/24")
	b.ApproveRoutes(lan)
	h := startDaemon(t, t.TempDir())
	ctx := context.Background()
	if _, err := h.client.AdvertiseRoutes(ctx, []netip.Prefix{lan}); err == nil || !strings.Contains(err.Error(), "not logged in") {
		t.Fatalf("advertise before login: %v", err)
	}
	st, err := h.client.Up(ctx, wire.UpRequest{Broker: b.URL, CAPEM: b.CAPEM, AuthKey: controltest.GoodAuthKey, Name: "gw"})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]netip.Prefix{pfx("192.168.1.1/24"), pfx("100.64.0.0/16"), pfx("127.0.0.0/8")} {
		if _, err := h.client.AdvertiseRoutes(ctx, bad); err == nil {
			t.Errorf("advertised %v", bad)
		}
	}
	if b.Advertised(st.Self.PublicKey) != nil {
		t.Fatalf("refused advertisements reached the broker")
	}
	resp, err := h.client.AdvertiseRoutes(ctx, pfx("10.0.0.0/8", "192.168.1.0/24", "10.0.0.0/8"))
	if err != nil || !slices.Equal(resp.Advertised, pfx("10.0.0.0/8", "192.168.1.0/24")) || !slices.Equal(resp.Routes, []netip.Prefix{lan}) {
		t.Fatalf("advertise: %+v %v", resp, err)
	}

	for _, bad := range []wire.VDevRequest{
		{Name: "Bad Name", LANIP: netip.MustParseAddr("192.168.1.50")},
		{Name: "cam", LANIP: netip.MustParseAddr("100.64.0.9")},
		{Name: "cam", LANIP: netip.MustParseAddr("169.254.0.9")},
		{Name: "cam", LANIP: netip.MustParseAddr("fd00::9")},
	} {
		if _, err := h.client.AddVirtualDevice(ctx, bad); err == nil {
			t.Errorf("added %+v", bad)
		}
	}
	if n := len(b.VirtualDevices(st.Self.PublicKey)); n != 0 {
		t.Fatalf("refused virtual devices reached the broker: %d", n)
	}
	v, err := h.client.AddVirtualDevice(ctx, wire.VDevRequest{Name: "cam", LANIP: netip.MustParseAddr("192.168.1.50")})
	if err != nil || v.Name != "cam" || v.LANIP != netip.MustParseAddr("192.168.1.50") {
		t.Fatalf("add: %+v %v", v, err)
	}
	if _, err := h.client.RemoveVirtualDevice(ctx, "cam"); err != nil {
		t.Fatal(err)
	}
	_, err = h.client.RemoveVirtualDevice(ctx, "cam")
	var apiErr *ipc.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound || !strings.Contains(apiErr.Message, "no virtual device cam") {
		t.Fatalf("second remove: %v", err)
	}
}

// TestCheckOnLAN: a virtual device's LAN IP must be a neighbour on one of the host's own
// IPv4 networks, never the host itself; the tunnel's and IPv6 networks do not count.
func TestCheckOnLAN(t *testing.T) {
	local := pfx("192.168.1.2/24", "fd00::2/64", "100.64.0.1/10", "192.168.1.3/24", "10.0.0.2/8", "172.16.0.9/32")
	for _, tc := range []struct {
		ip, err string
	}{
		{"192.168.1.50", ""},
		{"192.168.1.3", "192.168.1.3 is this device's own address: give the LAN device's"},
		{"10.200.3.4", ""},
		{"172.16.0.9", "172.16.0.9 is this device's own address: give the LAN device's"},
		{"172.16.0.10", "172.16.0.10 is on none of this device's networks (192.168.1.0/24, 10.0.0.0/8, 172.16.0.9/32)"},
		{"192.168.7.50", "192.168.7.50 is on none of this device's networks (192.168.1.0/24, 10.0.0.0/8, 172.16.0.9/32)"},
	} {
		err := checkOnLAN(netip.MustParseAddr(tc.ip), local)
		var apiErr *Error
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s refused: %v", tc.ip, err)
		case tc.err != "" && (!errors.As(err, &apiErr) || apiErr.Code != http.StatusBadRequest || err.Error() != tc.err):
			t.Errorf("%s: got %v, want 400 %q", tc.ip, err, tc.err)
		}
	}
	err := checkOnLAN(netip.MustParseAddr("192.168.1.50"), pfx("100.64.0.1/10", "fd00::2/64"))
	if err == nil || err.Error() != "192.168.1.50 is on none of this device's networks (none)" {
		t.Errorf("host with no IPv4 network: %v", err)
	}
}

// TestDaemonVDevOffLAN: weftd refuses a LAN IP that is not on one of its host's networks,
// or is the host's own address, with one line, and the broker hears of nothing; an
// address on the LAN goes through.
func TestDaemonVDevOffLAN(t *testing.T) {
	b := controltest.NewBroker(t)
	h := startDaemon(t, t.TempDir()) // its host has fakeHostNets
	ctx := context.Background()
	st, err := h.client.Up(ctx, wire.UpRequest{Broker: b.URL, CAPEM: b.CAPEM, AuthKey: controltest.GoodAuthKey, Name: "gw"})
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]string{
		"192.168.7.50": "192.168.7.50 is on none of this device's networks (192.168.1.0/24, 10.0.0.0/8)",
		"192.168.1.2":  "192.168.1.2 is this device's own address: give the LAN device's",
	} {
		_, err := h.client.AddVirtualDevice(ctx, wire.VDevRequest{Name: "cam", LANIP: netip.MustParseAddr(ip)})
		var apiErr *ipc.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || apiErr.Message != want {
			t.Errorf("add with LAN IP %s: %v, want 400 %q", ip, err, want)
		}
	}
	if v := b.VirtualDevices(st.Self.PublicKey); len(v) != 0 {
		t.Fatalf("refused virtual devices reached the broker: %v", v)
	}
	v, err := h.client.AddVirtualDevice(ctx, wire.VDevRequest{Name: "cam", LANIP: netip.MustParseAddr("10.9.8.7")})
	if err != nil || v.LANIP != netip.MustParseAddr("10.9.8.7") {
		t.Fatalf("add on the second network: %+v %v", v, err)
	}
	if got := b.VirtualDevices(st.Self.PublicKey); len(got) != 1 || got["cam"].LANIP != v.LANIP {
		t.Fatalf("broker has %v", got)
	}
}

// TestGatewayChoicesSurviveLoggingInAgain: `weft up` again for the same device (same key,
// same broker) keeps the gateways its user chose.
func TestGatewayChoicesSurviveLoggingInAgain(t *testing.T) {
	b := controltest.NewBroker(t)
	gw := dev(t, "g", "gw", "100.64.0.50", "198.51.100.50:51820")
	gw.Advertised, gw.Routes = pfx("10.1.0.0/16"), pfx("10.1.0.0/16")
	b.OnStream(func(n int, s *controltest.Stream) {
		self := s.Device
		s.Send(wire.MapUpdate{Full: true, Self: &self, Peers: []wire.Device{gw}, Filter: &wire.PacketFilter{DefaultAllow: true}})
		<-s.Done()
	})
	dir := t.TempDir()
	h := startDaemon(t, dir)
	ctx := context.Background()
	up := func() {
		t.Helper()
		if _, err := h.client.Up(ctx, wire.UpRequest{Broker: b.URL, CAPEM: b.CAPEM, AuthKey: controltest.GoodAuthKey, Name: "laptop"}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "running", func() bool { return h.status().State == wire.StateRunning && len(h.status().Peers) == 1 })
	}
	up()
	if _, err := h.client.UseGateway(ctx, wire.GatewayUseRequest{Gateway: "gw"}); err != nil {
		t.Fatal(err)
	}
	up() // the same key: the same device
	store, _ := OpenStore(dir)
	if s, _, _ := store.Load(); len(s.GatewayRoutes) != 1 || s.GatewayRoutes[0].Gateway != gw.ID {
		t.Fatalf("after logging in again: choices %v", s.GatewayRoutes)
	}
	if g, err := h.client.Gateways(ctx); err != nil || len(g.Choices) != 1 || !g.Choices[0].Active {
		t.Fatalf("after logging in again: %+v, %v", g, err)
	}
}
