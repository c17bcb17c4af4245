package broker

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/weftmesh/weft/wire"
)

func prefixList(ss ...string) []netip.Prefix {
	out := []netip.Prefix{}
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// advertise posts d's routes, failing the test unless the broker takes them.
func (d *device) advertise(t *testing.T, routes ...string) wire.RoutesResponse {
	t.Helper()
	status, body := d.authed(t, http.MethodPost, wire.PathRoutes, mustJSON(t, wire.RoutesRequest{Advertise: prefixList(routes...)}))
	if status != http.StatusOK {
		t.Fatalf("advertise %v: %d %s", routes, status, body)
	}
	var resp wire.RoutesResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

// addVDev registers a virtual device behind d and returns the status and the device or
// the error line.
func (d *device) addVDev(t *testing.T, name, lan string) (int, wire.Device, string) {
	t.Helper()
	body := []byte(`{"name":"` + name + `","lan_ip":"` + lan + `"}`)
	status, rb := d.authed(t, http.MethodPost, wire.PathVDevs, body)
	if status != http.StatusOK {
		return status, wire.Device{}, errorLine(t, rb)
	}
	var resp wire.VDevResponse
	if err := json.Unmarshal(rb, &resp); err != nil {
		t.Fatal(err)
	}
	return status, resp.Device, ""
}

func (d *device) removeVDev(t *testing.T, name string) (int, string) {
	t.Helper()
	status, rb := d.authed(t, http.MethodPost, wire.PathVDevsRemove, mustJSON(t, wire.VDevRemoveRequest{Name: name}))
	if status == http.StatusNoContent {
		return status, ""
	}
	return status, errorLine(t, rb)
}

func peerByID(peers []wire.Device, id string) (wire.Device, bool) {
	for _, p := range peers {
		if p.ID == id {
			return p, true
		}
	}
	return wire.Device{}, false
}

// nextPeer waits for an update to m that carries peer id and returns it.
func (ms *mapStream) nextPeer(t *testing.T, id string) wire.Device {
	t.Helper()
	u := ms.next(t)
	p, ok := peerByID(u.Peers, id)
	if !ok {
		t.Fatalf("update %+v, want peer %s", u, id)
	}
	return p
}

func TestRoutesAdvertiseAndApprove(t *testing.T) {
	tb := startBroker(t, nil)
	tb.setupAccount(t, "acme")
	key := tb.authKey(t, "acme", true)
	gw, b := tb.newDevice(t, "gw"), tb.newDevice(t, "b")
	gw.register(t, key)
	b.register(t, key)
	mgw := gw.openMap(t)
	mgw.next(t)
	mb := b.openMap(t)
	mb.next(t)
	mgw.next(t) // b online

	for _, bad := range []struct{ body, want string }{
		{`{"advertise":["192.168.1.1/24"]}`, "route 192.168.1.1/24 is not a network address: use 192.168.1.0/24"},
		{`{"advertise":["100.64.1.0/24"]}`, "route 100.64.1.0/24 is inside the mesh range 100.64.0.0/10"},
		{`{"advertise":["banana"]}`, "malformed request"},
		{`{}`, "advertise is missing"},
		{`{"advertise":[],"routes":[]}`, "unknown field"},
	} {
		status, rb := gw.authed(t, http.MethodPost, wire.PathRoutes, []byte(bad.body))
		if status != http.StatusBadRequest || !strings.Contains(errorLine(t, rb), bad.want) {
			t.Errorf("%s: %d %s, want 400 %q", bad.body, status, rb, bad.want)
		}
	}
	if d, _ := tb.store.DeviceByID(t.Context(), gw.ID); len(d.Advertised) != 0 {
		t.Fatalf("refused routes stored: %v", d.Advertised)
	}

	resp := gw.advertise(t, "192.168.1.0/24", "0.0.0.0/0")
	if !slices.Equal(resp.Advertised, prefixList("0.0.0.0/0", "192.168.1.0/24")) || len(resp.Routes) != 0 {
		t.Fatalf("advertise: %+v, want both advertised, none approved", resp)
	}
	if p := mb.nextPeer(t, gw.ID); !slices.Equal(p.Advertised, resp.Advertised) || len(p.Routes) != 0 {
		t.Fatalf("b sees gw %+v", p)
	}
	if u := mgw.next(t); u.Self == nil || !slices.Equal(u.Self.Advertised, resp.Advertised) {
		t.Fatalf("gw got %+v, want itself advertising", u)
	}

	ac, err := NewAdminClient(tb.dir)
	if err != nil {
		t.Fatal(err)
	}
	approve := func(route string) (AdminRoutes, error) {
		return ac.ApproveRoute(t.Context(), AdminRouteRequest{Account: "acme", Device: "gw", Route: netip.MustParsePrefix(route)})
	}
	if _, err := approve("10.0.0.0/8"); err == nil || !strings.Contains(err.Error(), "does not advertise 10.0.0.0/8") {
		t.Errorf("approve an unadvertised route: %v", err)
	}
	if _, err := approve("192.168.1.7/24"); err == nil || !strings.Contains(err.Error(), "use 192.168.1.0/24") {
		t.Errorf("approve a host address: %v", err)
	}
	if r, err := approve("192.168.1.0/24"); err != nil || !slices.Equal(r.Routes, prefixList("192.168.1.0/24")) {
		t.Fatalf("approve: %+v, %v", r, err)
	}
	if p := mb.nextPeer(t, gw.ID); !slices.Equal(p.Routes, prefixList("192.168.1.0/24")) {
		t.Fatalf("b sees gw's routes %v after approval", p.Routes)
	}
	mgw.next(t) // its own record

	// Withdrawn, the route stops; advertised again, its approval is back.
	if resp := gw.advertise(t); len(resp.Advertised) != 0 || len(resp.Routes) != 0 {
		t.Fatalf("withdraw: %+v", resp)
	}
	if p := mb.nextPeer(t, gw.ID); len(p.Advertised) != 0 || len(p.Routes) != 0 {
		t.Fatalf("b sees gw %+v after withdrawal", p)
	}
	mgw.next(t)
	routes, err := ac.Routes(t.Context(), "acme")
	if err != nil || len(routes) != 1 || !slices.Equal(routes[0].Approved, prefixList("192.168.1.0/24")) || len(routes[0].Advertised) != 0 {
		t.Fatalf("route list after withdrawal: %+v, %v", routes, err)
	}
	if resp := gw.advertise(t, "192.168.1.0/24"); !slices.Equal(resp.Routes, prefixList("192.168.1.0/24")) {
		t.Fatalf("advertise again: %+v", resp)
	}
	if p := mb.nextPeer(t, gw.ID); !slices.Equal(p.Routes, prefixList("192.168.1.0/24")) {
		t.Fatalf("b sees gw %+v", p)
	}
	mgw.next(t)

	if _, err := ac.UnapproveRoute(t.Context(), AdminRouteRequest{Account: "acme", Device: "gw", Route: netip.MustParsePrefix("192.168.1.0/24")}); err != nil {
		t.Fatal(err)
	}
	if p := mb.nextPeer(t, gw.ID); len(p.Routes) != 0 || len(p.Advertised) != 1 {
		t.Fatalf("b sees gw %+v after unapproval", p)
	}
}

func TestRoutesAutoApprovedByPolicy(t *testing.T) {
	tb := startBroker(t, nil)
	tb.setupAccount(t, "acme")
	key := tb.authKey(t, "acme", true)
	gw, b := tb.newDevice(t, "gw"), tb.newDevice(t, "b")
	gw.register(t, key)
	b.register(t, key)
	pol := `{"default":"allow","groups":{"gws":["gw"]},
		"autoApprovers":{"routes":{"192.168.0.0/16":["group:gws"]},"exitNode":["b"]}}`
	if _, err := tb.setPolicy(t.Context(), "acme", "p.json", []byte(pol)); err != nil {
		t.Fatal(err)
	}
	resp := gw.advertise(t, "192.168.1.0/24", "10.0.0.0/8", "0.0.0.0/0")
	if !slices.Equal(resp.Routes, prefixList("192.168.1.0/24")) {
		t.Fatalf("routes %v, want only 192.168.1.0/24 approved by the policy", resp.Routes)
	}
	if resp := b.advertise(t, "192.168.2.0/24"); len(resp.Routes) != 0 {
		t.Fatalf("b's routes %v: b is no route approver", resp.Routes)
	}
	// A new policy approves what is advertised already.
	pol = strings.Replace(pol, `"exitNode":["b"]`, `"exitNode":["group:gws"]`, 1)
	if _, err := tb.setPolicy(t.Context(), "acme", "p.json", []byte(pol)); err != nil {
		t.Fatal(err)
	}
	mb := b.openMap(t)
	full := mb.next(t)
	if p, ok := peerByID(full.Peers, gw.ID); !ok || !slices.Equal(p.Routes, prefixList("0.0.0.0/0", "192.168.1.0/24")) {
		t.Fatalf("b sees gw %+v, want the exit route approved too", p)
	}
	// A policy with a bad approver section is refused whole.
	if _, err := tb.setPolicy(t.Context(), "acme", "p.json", []byte(`{"default":"allow","autoApprovers":{"routes":{"0.0.0.0/0":["gw"]}}}`)); err == nil ||
		!strings.Contains(err.Error(), "p.json:1:47: route 0.0.0.0/0 is an exit route") {
		t.Fatalf("bad policy: %v", err)
	}
}

func TestVirtualDevicesInMaps(t *testing.T) {
	tb := startBroker(t, nil)
	tb.setupAccount(t, "acme")
	key := tb.authKey(t, "acme", true)
	gw, b := tb.newDevice(t, "gw"), tb.newDevice(t, "b")
	gw.register(t, key)
	b.register(t, key)
	mgw := gw.openMap(t)
	mgw.next(t)
	mb := b.openMap(t)
	mb.next(t)
	mgw.next(t) // b online

	status, cam, msg := gw.addVDev(t, "camera", "192.168.1.50")
	if status != http.StatusOK || cam.Kind != wire.KindVirtual || cam.Gateway != gw.ID || cam.Name != "camera" ||
		cam.FQDN != "camera.acme.weft.internal" || !cam.Online || cam.LANIP != netip.MustParseAddr("192.168.1.50") ||
		!cam.PublicKey.IsZero() || cam.Address == gw.Address || cam.Address == b.Address || !netip.MustParsePrefix("100.64.0.0/10").Contains(cam.Address) {
		t.Fatalf("add camera: %d %+v %s", status, cam, msg)
	}
	// Everyone sees it with its mesh address; only the gateway sees its LAN IP and filter.
	if p := mb.nextPeer(t, cam.ID); p.Kind != wire.KindVirtual || p.Gateway != gw.ID || p.Address != cam.Address ||
		p.LANIP.IsValid() || p.VirtualFilter != nil || !p.PublicKey.IsZero() || len(p.Endpoints) != 0 || !p.Online {
		t.Fatalf("b sees the camera as %+v", p)
	}
	if p := mgw.nextPeer(t, cam.ID); p.LANIP != cam.LANIP || p.VirtualFilter == nil || !p.VirtualFilter.DefaultAllow {
		t.Fatalf("gw sees its camera as %+v", p)
	}

	for _, bad := range []struct {
		name, lan string
		status    int
		want      string
	}{
		{"nvr", "100.64.0.5", http.StatusBadRequest, "inside the mesh range"},
		{"nvr", "192.168.1.255.1", http.StatusBadRequest, "malformed request"},
		{"NVR", "192.168.1.60", http.StatusBadRequest, `name "NVR" has 'N'`},
		{"nvr", "192.168.1.50", http.StatusConflict, "LAN IP 192.168.1.50 is virtual device camera of this gateway already"},
	} {
		if status, _, msg := gw.addVDev(t, bad.name, bad.lan); status != bad.status || !strings.Contains(msg, bad.want) {
			t.Errorf("add %s %s: %d %q, want %d %q", bad.name, bad.lan, status, msg, bad.status, bad.want)
		}
	}
	// The same request again is no change.
	if status, again, _ := gw.addVDev(t, "camera", "192.168.1.50"); status != http.StatusOK || again.ID != cam.ID {
		t.Fatalf("add camera again: %d %+v", status, again)
	}

	// b cannot remove gw's camera; at b's site the same LAN address is another camera.
	if status, msg := b.removeVDev(t, "camera"); status != http.StatusNotFound {
		t.Fatalf("b removes gw's camera: %d %s", status, msg)
	}
	if status, msg := b.removeVDev(t, ""); status != http.StatusBadRequest {
		t.Fatalf("remove without a name: %d %s", status, msg)
	}
	_, cam2, _ := b.addVDev(t, "camera", "192.168.1.50")
	if cam2.Name != "camera-2" || cam2.Address == cam.Address {
		t.Fatalf("b's camera %+v", cam2)
	}
	if p := mgw.nextPeer(t, cam2.ID); p.LANIP.IsValid() || p.VirtualFilter != nil {
		t.Fatalf("gw sees b's camera as %+v", p)
	}
	mb.nextPeer(t, cam2.ID)

	// DNS resolves virtual devices like devices.
	for name, want := range map[string]netip.Addr{"camera": cam.Address, "camera-2": cam2.Address, "gw": gw.Address} {
		if a, ok, err := (dnsResolver{tb.store}).LookupDevice(t.Context(), "acme", name); !ok || err != nil || a != want {
			t.Errorf("DNS %s: %v %v %v, want %v", name, a, ok, err, want)
		}
	}

	// The gateway goes offline: so do its virtual devices.
	mgw.resp.Body.Close()
	u := mb.next(t)
	pgw, ok1 := peerByID(u.Peers, gw.ID)
	pcam, ok2 := peerByID(u.Peers, cam.ID)
	if !ok1 || !ok2 || pgw.Online || pcam.Online || len(u.Peers) != 2 {
		t.Fatalf("b got %+v, want gw and its camera offline", u)
	}

	// Removed by its gateway, it leaves every map.
	if status, msg := gw.removeVDev(t, "camera"); status != http.StatusNoContent {
		t.Fatalf("gw removes its camera: %d %s", status, msg)
	}
	if u := mb.next(t); !slices.Equal(u.Removed, []string{cam.ID}) {
		t.Fatalf("b got %+v, want the camera removed", u)
	}
	if _, ok, _ := (dnsResolver{tb.store}).LookupDevice(t.Context(), "acme", "camera"); ok {
		t.Error("the removed camera still resolves")
	}

	// Removing the gateway removes its virtual devices.
	_, nvr, _ := gw.addVDev(t, "nvr", "192.168.1.70")
	mb.nextPeer(t, nvr.ID)
	ac, err := NewAdminClient(tb.dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ac.RemoveDevice(t.Context(), "acme", "gw"); err != nil {
		t.Fatal(err)
	}
	want := []string{gw.ID, nvr.ID}
	slices.Sort(want)
	if u := mb.next(t); !slices.Equal(u.Removed, want) {
		t.Fatalf("b got %+v, want gw and nvr removed", u)
	}

	// An administrator removes any virtual device.
	vs, err := ac.VirtualDevices(t.Context(), "acme")
	if err != nil || len(vs) != 1 || vs[0].Name != "camera-2" || vs[0].GatewayName != "b" || vs[0].LANIP != cam2.LANIP {
		t.Fatalf("vdev list: %+v, %v", vs, err)
	}
	if _, err := ac.RemoveVirtualDevice(t.Context(), "acme", "camera-2"); err != nil {
		t.Fatal(err)
	}
	if u := mb.next(t); !slices.Equal(u.Removed, []string{cam2.ID}) {
		t.Fatalf("b got %+v, want its camera removed", u)
	}
	if _, err := ac.RemoveVirtualDevice(t.Context(), "acme", "camera-2"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("remove twice: %v", err)
	}
}

// TestVirtualDevicesUnderPolicy: a device the policy lets reach a virtual device sees it
// and its gateway; the gateway gets the virtual device's filter; others see neither.
func TestVirtualDevicesUnderPolicy(t *testing.T) {
	tb := startBroker(t, nil)
	tb.setupAccount(t, "acme")
	key := tb.authKey(t, "acme", true)
	a, b, gw := tb.newDevice(t, "a"), tb.newDevice(t, "b"), tb.newDevice(t, "gw")
	for _, d := range []*device{a, b, gw} {
		d.register(t, key)
	}
	if status, _, msg := gw.addVDev(t, "camera", "192.168.1.50"); status != http.StatusOK {
		t.Fatalf("add camera: %d %s", status, msg)
	}
	src := `{"default":"deny","rules":[{"from":["a"],"to":["camera"],"ports":["tcp/554"]}]}`
	warnings, err := tb.setPolicy(t.Context(), "acme", "p.json", []byte(src))
	if err != nil || len(warnings) != 0 {
		t.Fatalf("set policy: %v, warnings %q (camera is a known name)", err, warnings)
	}
	cam, err := tb.store.AccountVirtualDevices(t.Context(), "acme")
	if err != nil || len(cam) != 1 {
		t.Fatal(err)
	}
	camID := cam[0].ID

	fa := a.openMap(t).next(t)
	if ids := sortedIDs(peerIDs(fa.Peers)...); !slices.Equal(ids, sortedIDs(gw.ID, camID)) {
		t.Fatalf("a sees %v, want gw and camera", ids)
	}
	if p, _ := peerByID(fa.Peers, camID); p.LANIP.IsValid() || p.VirtualFilter != nil {
		t.Fatalf("a sees the camera as %+v", p)
	}
	if fb := b.openMap(t).next(t); len(fb.Peers) != 0 {
		t.Fatalf("b sees %v, want nobody", peerIDs(fb.Peers))
	}
	fg := gw.openMap(t).next(t)
	if ids := sortedIDs(peerIDs(fg.Peers)...); !slices.Equal(ids, sortedIDs(a.ID, camID)) {
		t.Fatalf("gw sees %v, want a and its camera", ids)
	}
	if fg.Filter == nil || fg.Filter.DefaultAllow || len(fg.Filter.Rules) != 0 {
		t.Fatalf("gw's own filter %+v, want deny-all: nothing may reach gw itself", fg.Filter)
	}
	p, _ := peerByID(fg.Peers, camID)
	want := wire.PacketFilter{Rules: []wire.FilterRule{{Sources: []netip.Prefix{netip.PrefixFrom(a.Address, 32)},
		Proto: wire.ProtoTCP, Ports: []wire.PortRange{{First: 554, Last: 554}}}}}
	if p.VirtualFilter == nil || !slices.EqualFunc(p.VirtualFilter.Rules, want.Rules, func(x, y wire.FilterRule) bool {
		return slices.Equal(x.Sources, y.Sources) && x.Proto == y.Proto && slices.Equal(x.Ports, y.Ports)
	}) || p.LANIP != netip.MustParseAddr("192.168.1.50") {
		t.Fatalf("gw's camera %+v, want filter %+v", p, want)
	}
}

func sortedIDs(ids ...string) []string {
	slices.Sort(ids)
	return ids
}
