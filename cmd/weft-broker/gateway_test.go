package main

import (
	"encoding/json"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/weftmesh/weft/broker"
	"github.com/weftmesh/weft/broker/store"
	"github.com/weftmesh/weft/wire"
)

// gatewaySetup starts a broker with account acme, its gateway gw advertising a LAN and
// the internet, and a camera behind gw; the store is opened beside the running broker.
func gatewaySetup(t *testing.T) string {
	t.Helper()
	dir := startBroker(t)
	if r := runCmd("", "account", "create", "acme", "--data", dir); r.code != 0 {
		t.Fatalf("account create: %+v", r)
	}
	ctx := t.Context()
	s, err := store.Open(ctx, filepath.Join(dir, "broker.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, err := s.AccountByName(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	k, err := wire.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.RegisterInAccount(ctx, a.ID, store.DeviceSpec{PublicKey: k.Public(), Name: "gw"})
	if err != nil {
		t.Fatal(err)
	}
	routes := []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("0.0.0.0/0")}
	if _, _, err := s.SetAdvertisedRoutes(ctx, res.Device.ID, routes); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AddVirtualDevice(ctx, res.Device.ID, store.VirtualSpec{Name: "camera", LANIP: netip.MustParseAddr("192.168.1.50")}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func fields(out string) [][]string {
	var rows [][]string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		rows = append(rows, strings.Fields(l))
	}
	return rows
}

func TestRouteCommands(t *testing.T) {
	dir := gatewaySetup(t)
	r := runCmd("", "route", "list", "acme", "--data", dir)
	want := [][]string{
		{"DEVICE", "ROUTE", "ADVERTISED", "APPROVED", "IN-USE"},
		{"gw", "0.0.0.0/0", "(exit)", "yes", "no", "no"},
		{"gw", "192.168.1.0/24", "yes", "no", "no"},
	}
	if r.code != 0 || !slices.EqualFunc(fields(r.stdout), want, slices.Equal) {
		t.Fatalf("route list: %+v", r)
	}
	if r := runCmd("", "route", "approve", "acme", "gw", "192.168.1.0/24", "--data", dir); r.code != 0 ||
		r.stdout != "approved route 192.168.1.0/24 of device gw in account acme\n" {
		t.Fatalf("route approve: %+v", r)
	}
	r = runCmd("", "route", "list", "acme", "--json", "--data", dir)
	var routes []broker.AdminRoutes
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &routes) != nil || len(routes) != 1 ||
		!slices.Equal(routes[0].Routes, []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}) {
		t.Fatalf("route list --json: %+v", r)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"route", "approve", "acme", "gw", "10.0.0.0/8"}, "does not advertise 10.0.0.0/8"},
		{[]string{"route", "approve", "acme", "gw", "192.168.1.9/24"}, "use 192.168.1.0/24"},
		{[]string{"route", "approve", "acme", "ghost", "0.0.0.0/0"}, "not found"},
		{[]string{"route", "unapprove", "acme", "gw", "0.0.0.0/0"}, "is not approved"},
		{[]string{"route", "list", "nope"}, "not found"},
	} {
		r := runCmd("", append(tt.args, "--data", dir)...)
		if r.code != 1 || !strings.Contains(r.stderr, tt.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q; want 1 and %q", tt.args, r.code, r.stderr, tt.want)
		}
	}
	if r := runCmd("", "route", "unapprove", "acme", "gw", "192.168.1.0/24", "--data", dir); r.code != 0 ||
		r.stdout != "unapproved route 192.168.1.0/24 of device gw in account acme\n" {
		t.Fatalf("route unapprove: %+v", r)
	}
}

func TestVDevCommands(t *testing.T) {
	dir := gatewaySetup(t)
	r := runCmd("", "vdev", "list", "acme", "--data", dir)
	rows := fields(r.stdout)
	if r.code != 0 || len(rows) != 2 || !slices.Equal(rows[0], []string{"NAME", "ADDRESS", "LAN-IP", "GATEWAY", "ONLINE"}) ||
		rows[1][0] != "camera" || rows[1][2] != "192.168.1.50" || rows[1][3] != "gw" || rows[1][4] != "no" {
		t.Fatalf("vdev list: %+v", r)
	}
	r = runCmd("", "vdev", "list", "acme", "--json", "--data", dir)
	var vs []broker.AdminVDev
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &vs) != nil || len(vs) != 1 || vs[0].Kind != wire.KindVirtual {
		t.Fatalf("vdev list --json: %+v", r)
	}
	if r := runCmd("", "vdev", "remove", "acme", "camera", "--data", dir); r.code != 0 ||
		!strings.HasPrefix(r.stdout, "removed virtual device camera (100.64.") || !strings.Contains(r.stdout, "LAN 192.168.1.50 behind gw") {
		t.Fatalf("vdev remove: %+v", r)
	}
	if r := runCmd("", "vdev", "remove", "acme", "camera", "--data", dir); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("vdev remove twice: %+v", r)
	}
	if r := runCmd("", "vdev", "list", "acme", "--data", dir); r.code != 0 || len(fields(r.stdout)) != 1 {
		t.Fatalf("vdev list after removal: %+v", r)
	}
}

func TestGatewayUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"route", "--data", "/x"},
		{"route", "frob", "acme", "--data", "/x"},
		{"route", "list", "--data", "/x"},
		{"route", "approve", "acme", "gw", "--data", "/x"},
		{"route", "approve", "acme", "gw", "lan", "--data", "/x"},
		{"route", "approve", "acme", "gw", "10.0.0.0/8", "--json", "--data", "/x"},
		{"route", "list", "acme"}, // no --data
		{"vdev", "list", "--data", "/x"},
		{"vdev", "remove", "acme", "--data", "/x"},
		{"vdev", "remove", "acme", "cam", "--json", "--data", "/x"},
		{"vdev", "add", "acme", "cam", "--data", "/x"},
	} {
		r := runCmd("", args...)
		if r.code != 2 || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "weft-broker: ") {
			t.Errorf("%q: exit %d, stderr %q; want 2 and one line", args, r.code, r.stderr)
		}
	}
}
