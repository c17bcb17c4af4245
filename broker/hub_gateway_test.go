package broker

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/weftmesh/weft/wire"
)

// TestHubVirtualDevices: a virtual device's LAN address and filter reach its gateway only,
// a change to them reaches only the gateway, and it is online while its gateway is.
func TestHubVirtualDevices(t *testing.T) {
	h := NewHub()
	gw, b := dev(t, "gw"), dev(t, "b")
	cam := wire.Device{ID: "cam", Name: "cam", Account: "acme", Address: netip.MustParseAddr("100.64.0.9"),
		Kind: wire.KindVirtual, Gateway: "gw", LANIP: netip.MustParseAddr("192.168.1.50")}
	fromB := wire.PacketFilter{Rules: []wire.FilterRule{{Sources: []netip.Prefix{netip.MustParsePrefix("100.64.0.2/32")}, Proto: wire.ProtoAny}}}
	all := map[string][]string{"gw": {"b", "cam"}, "b": {"gw", "cam"}}
	ac := &acct{h: h, id: 1, view: fixedView{visible: all, filters: map[string]wire.PacketFilter{"cam": fromB}}}
	ac.set(gw, b, cam)

	sb, full := ac.subscribe(t, b)
	c, ok := peerByID(full.Peers, "cam")
	if !ok || c.LANIP.IsValid() || c.VirtualFilter != nil || c.Online || c.Address != cam.Address {
		t.Fatalf("b sees cam as %+v", c)
	}
	sg, full := ac.subscribe(t, gw)
	c, _ = peerByID(full.Peers, "cam")
	if c.LANIP != cam.LANIP || c.VirtualFilter == nil || !reflect.DeepEqual(*c.VirtualFilter, fromB) || !c.Online {
		t.Fatalf("gw sees its cam as %+v", c)
	}
	// gw came online, and so did its camera.
	u := next(t, sb)
	if pc, ok := peerByID(u.Peers, "cam"); !ok || !pc.Online || pc.LANIP.IsValid() || len(u.Peers) != 2 {
		t.Fatalf("b got %+v, want gw and cam online", u)
	}

	// Only the camera's filter changes: only its gateway hears of it.
	ac.view = fixedView{visible: all}
	ac.set()
	if u := next(t, sg); len(u.Peers) != 1 || u.Peers[0].VirtualFilter == nil || len(u.Peers[0].VirtualFilter.Rules) != 0 {
		t.Fatalf("gw got %+v, want cam with a deny-all filter", u)
	}
	none(t, sb)
	// So for its LAN address.
	cam.LANIP = netip.MustParseAddr("192.168.1.51")
	ac.set(cam)
	if u := next(t, sg); len(u.Peers) != 1 || u.Peers[0].LANIP != cam.LANIP {
		t.Fatalf("gw got %+v, want cam moved", u)
	}
	none(t, sb)

	h.Unsubscribe(sg)
	if u := next(t, sb); len(u.Peers) != 2 || u.Peers[0].Online || u.Peers[1].Online {
		t.Fatalf("b got %+v, want gw and cam offline", u)
	}
}
