package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func prefixes(ss ...string) []netip.Prefix {
	out := []netip.Prefix{}
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func mustRegister(t *testing.T, s *Store, accountID int64, name string) Device {
	t.Helper()
	res, err := s.RegisterInAccount(context.Background(), accountID, spec(t, name))
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return res.Device
}

func mustVDev(t *testing.T, s *Store, gateway, name, lan string) VirtualDevice {
	t.Helper()
	v, _, err := s.AddVirtualDevice(context.Background(), gateway, VirtualSpec{Name: name, LANIP: netip.MustParseAddr(lan)})
	if err != nil {
		t.Fatalf("add virtual device %s: %v", name, err)
	}
	return v
}

func TestAdvertiseAndApproveRoutes(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	a := mustAccount(t, s, "acme")
	gw := mustRegister(t, s, a.ID, "gw")

	for _, bad := range [][]netip.Prefix{
		prefixes("192.168.1.1/24"),
		prefixes("100.64.3.0/24"),
		prefixes("127.0.0.0/8"),
		prefixes("224.0.0.0/4"),
		prefixes("::ffff:10.0.0.0/104"),
		{{}},
	} {
		if _, _, err := s.SetAdvertisedRoutes(ctx, gw.ID, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("advertise %v: err = %v, want ErrInvalid", bad, err)
		}
	}
	var many []netip.Prefix
	for i := range 65 {
		many = append(many, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16))
	}
	if _, _, err := s.SetAdvertisedRoutes(ctx, gw.ID, many); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "limit is 64") {
		t.Errorf("65 routes: err = %v", err)
	}
	if d, _ := s.DeviceByID(ctx, gw.ID); len(d.Advertised) != 0 {
		t.Fatalf("refused advertisements stored: %v", d.Advertised)
	}

	d, changed, err := s.SetAdvertisedRoutes(ctx, gw.ID, prefixes("192.168.1.0/24", "0.0.0.0/0", "fd00::/8", "192.168.1.0/24"))
	if err != nil || !changed || !slices.Equal(d.Advertised, prefixes("0.0.0.0/0", "192.168.1.0/24", "fd00::/8")) || len(d.Routes()) != 0 {
		t.Fatalf("advertise: %v %v %v (routes %v)", d.Advertised, changed, err, d.Routes())
	}
	if _, changed, _ := s.SetAdvertisedRoutes(ctx, gw.ID, prefixes("fd00::/8", "192.168.1.0/24", "0.0.0.0/0")); changed {
		t.Error("the same routes in another order count as a change")
	}

	if _, err := s.ApproveRoute(ctx, "acme", "gw", netip.MustParsePrefix("10.0.0.0/8")); !errors.Is(err, ErrInvalid) ||
		!strings.Contains(err.Error(), "does not advertise 10.0.0.0/8 (it advertises 0.0.0.0/0, 192.168.1.0/24, fd00::/8)") {
		t.Errorf("approve an unadvertised route: %v", err)
	}
	if _, err := s.ApproveRoute(ctx, "acme", "ghost", netip.MustParsePrefix("0.0.0.0/0")); !errors.Is(err, ErrNotFound) {
		t.Errorf("approve for an unknown device: %v", err)
	}
	if _, err := s.ApproveRoute(ctx, "nope", "gw", netip.MustParsePrefix("0.0.0.0/0")); !errors.Is(err, ErrNotFound) {
		t.Errorf("approve in an unknown account: %v", err)
	}
	d, err = s.ApproveRoute(ctx, "acme", "gw", netip.MustParsePrefix("192.168.1.0/24"))
	if err != nil || !slices.Equal(d.Routes(), prefixes("192.168.1.0/24")) {
		t.Fatalf("approve: routes %v, %v", d.Routes(), err)
	}
	// By ID too, and twice is no error.
	for range 2 {
		if d, err = s.ApproveRoute(ctx, "acme", gw.ID, netip.MustParsePrefix("0.0.0.0/0")); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(d.Approved, prefixes("0.0.0.0/0", "192.168.1.0/24")) {
		t.Fatalf("approved %v", d.Approved)
	}

	// Withdrawn: no longer a route, but the approval stays for when it comes back.
	d, _, _ = s.SetAdvertisedRoutes(ctx, gw.ID, prefixes("0.0.0.0/0"))
	if !slices.Equal(d.Routes(), prefixes("0.0.0.0/0")) || len(d.Approved) != 2 {
		t.Fatalf("after withdrawal: routes %v approved %v", d.Routes(), d.Approved)
	}
	d, _, _ = s.SetAdvertisedRoutes(ctx, gw.ID, prefixes("0.0.0.0/0", "192.168.1.0/24"))
	if !slices.Equal(d.Routes(), prefixes("0.0.0.0/0", "192.168.1.0/24")) {
		t.Fatalf("advertised again: routes %v", d.Routes())
	}

	if d, err = s.UnapproveRoute(ctx, "acme", "gw", netip.MustParsePrefix("0.0.0.0/0")); err != nil || !slices.Equal(d.Routes(), prefixes("192.168.1.0/24")) {
		t.Fatalf("unapprove: %v, %v", d.Routes(), err)
	}
	if _, err := s.UnapproveRoute(ctx, "acme", "gw", netip.MustParsePrefix("0.0.0.0/0")); !errors.Is(err, ErrNotFound) {
		t.Errorf("unapprove twice: %v", err)
	}

	// The policy's approver approves what it says yes to, once.
	changed, err = s.ApproveAdvertised(ctx, gw.ID, func(p netip.Prefix) bool { return p.Bits() == 0 })
	if err != nil || !changed {
		t.Fatalf("ApproveAdvertised: %v, %v", changed, err)
	}
	if changed, _ := s.ApproveAdvertised(ctx, gw.ID, func(netip.Prefix) bool { return true }); changed {
		t.Error("ApproveAdvertised changed nothing but said it did")
	}

	// A reinstall (new key, same name, offline) advertises its own routes; approvals stay.
	res, err := s.RegisterInAccount(ctx, a.ID, spec(t, "gw"))
	if err != nil || res.Device.ID != gw.ID || len(res.Device.Advertised) != 0 || len(res.Device.Approved) != 2 {
		t.Fatalf("reinstall: %+v, %v", res.Device, err)
	}
}

func TestVirtualDevices(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	a := mustAccount(t, s, "acme")
	b := mustAccount(t, s, "beta")
	gw := mustRegister(t, s, a.ID, "gw")
	gw2 := mustRegister(t, s, a.ID, "gw2")
	mustRegister(t, s, a.ID, "printer")
	other := mustRegister(t, s, b.ID, "gw")

	cam := mustVDev(t, s, gw.ID, "camera", "192.168.1.50")
	if cam.Name != "camera" || cam.Gateway != "gw" || cam.Account != "acme" || !MeshPrefix.Contains(cam.Address) ||
		cam.Address == gw.Address || cam.Address == gw2.Address || cam.LANIP != netip.MustParseAddr("192.168.1.50") {
		t.Fatalf("camera: %+v", cam)
	}
	// The other site uses the same LAN: its camera gets a name with a suffix and its own address.
	cam2 := mustVDev(t, s, gw2.ID, "camera", "192.168.1.50")
	if cam2.Name != "camera-2" || cam2.Address == cam.Address {
		t.Fatalf("second camera: %+v", cam2)
	}
	// A device's name is taken too; another account is separate.
	if v := mustVDev(t, s, gw.ID, "printer", "192.168.1.9"); v.Name != "printer-2" {
		t.Fatalf("virtual printer named %q, want printer-2", v.Name)
	}
	if v := mustVDev(t, s, other.ID, "camera", "192.168.1.50"); v.Name != "camera" {
		t.Fatalf("other account's camera named %q", v.Name)
	}
	// A device registering under a virtual device's name gets a suffix.
	if d := mustRegister(t, s, a.ID, "camera"); d.Name != "camera-3" {
		t.Fatalf("device named %q, want camera-3", d.Name)
	}

	// The same request again changes nothing; the same name moves the device on the LAN.
	if v, changed, err := s.AddVirtualDevice(ctx, gw.ID, VirtualSpec{Name: "camera", LANIP: cam.LANIP}); err != nil || changed || v != cam {
		t.Fatalf("add again: %+v, %v, %v", v, changed, err)
	}
	moved, changed, err := s.AddVirtualDevice(ctx, gw.ID, VirtualSpec{Name: "camera", LANIP: netip.MustParseAddr("192.168.1.51")})
	if err != nil || !changed || moved.ID != cam.ID || moved.Address != cam.Address || moved.LANIP != netip.MustParseAddr("192.168.1.51") {
		t.Fatalf("move: %+v, %v, %v", moved, changed, err)
	}
	bad := []VirtualSpec{
		{Name: "nvr", LANIP: netip.MustParseAddr("192.168.1.51")}, // the camera's LAN IP on this gateway
		{Name: "Bad_Name", LANIP: netip.MustParseAddr("192.168.1.60")},
		{Name: "nvr", LANIP: netip.MustParseAddr("100.64.0.9")},
		{Name: "nvr", LANIP: netip.MustParseAddr("127.0.0.1")},
		{Name: "nvr", LANIP: netip.MustParseAddr("224.0.0.1")},
		{Name: "nvr", LANIP: netip.MustParseAddr("255.255.255.255")},
		{Name: "nvr", LANIP: netip.MustParseAddr("0.0.0.0")},
		{Name: "nvr", LANIP: netip.MustParseAddr("fe80::1%eth0")},
		{Name: "nvr", LANIP: netip.MustParseAddr("::ffff:192.168.1.60")},
		{Name: "nvr"},
	}
	for _, sp := range bad {
		if _, _, err := s.AddVirtualDevice(ctx, gw.ID, sp); !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrConflict) {
			t.Errorf("add %+v: err = %v, want ErrInvalid or ErrConflict", sp, err)
		}
	}
	if _, _, err := s.AddVirtualDevice(ctx, "nosuchdevice", VirtualSpec{Name: "x", LANIP: netip.MustParseAddr("10.0.0.1")}); !errors.Is(err, ErrNotFound) {
		t.Errorf("add behind an unknown gateway: %v", err)
	}
	for _, lan := range []string{"169.254.10.20", "fd00::50", "2001:db8::50"} {
		mustVDev(t, s, gw.ID, "ok-"+strings.NewReplacer(".", "-", ":", "-").Replace(lan), lan)
	}

	// DNS names resolve to devices and virtual devices alike.
	for name, want := range map[string]netip.Addr{"camera": cam.Address, "camera-2": cam2.Address, "gw": gw.Address} {
		if got, err := s.AddressByName(ctx, "acme", name); err != nil || got != want {
			t.Errorf("AddressByName(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
	if _, err := s.AddressByName(ctx, "acme", "ghost"); !errors.Is(err, ErrNotFound) {
		t.Errorf("AddressByName(ghost): %v", err)
	}

	// Every address in the account is distinct.
	devs, _ := s.Devices(ctx, a.ID)
	vdevs, _ := s.VirtualDevices(ctx, a.ID)
	seen := map[netip.Addr]string{}
	for _, d := range devs {
		seen[d.Address] = d.Name
	}
	for _, v := range vdevs {
		if n, dup := seen[v.Address]; dup {
			t.Errorf("%s and %s share %s", v.Name, n, v.Address)
		}
		seen[v.Address] = v.Name
	}
	if len(vdevs) != 6 {
		t.Fatalf("acme has %d virtual devices, want 6", len(vdevs))
	}

	// Only its gateway removes a virtual device; an administrator removes any.
	if _, err := s.RemoveVirtualDevice(ctx, gw.ID, "camera-2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("gw removes gw2's camera: %v", err)
	}
	if v, err := s.RemoveVirtualDevice(ctx, gw2.ID, "camera-2"); err != nil || v.ID != cam2.ID {
		t.Errorf("gw2 removes its camera: %+v, %v", v, err)
	}
	if v, err := s.RemoveAccountVirtualDevice(ctx, "acme", "printer-2"); err != nil || v.Gateway != "gw" {
		t.Errorf("admin removes printer-2: %+v, %v", v, err)
	}
	if _, err := s.RemoveAccountVirtualDevice(ctx, "beta", "printer-2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("remove from the wrong account: %v", err)
	}

	// Removing the gateway removes its virtual devices, and only those.
	mustVDev(t, s, gw2.ID, "nvr", "192.168.1.70")
	if _, err := s.RemoveDevice(ctx, "acme", "gw", "removed by administrator"); err != nil {
		t.Fatal(err)
	}
	vdevs, _ = s.VirtualDevices(ctx, a.ID)
	if len(vdevs) != 1 || vdevs[0].Name != "nvr" {
		t.Fatalf("after removing gw: %+v", vdevs)
	}
	if _, err := s.AddressByName(ctx, "acme", "camera"); !errors.Is(err, ErrNotFound) {
		t.Errorf("removed gateway's camera still resolves: %v", err)
	}

	// The database itself refuses a device row under a virtual device's name.
	_, err = s.db.ExecContext(ctx, `INSERT INTO devices (id, account_id, name, public_key, address, created_at)
		VALUES ('x', ?, 'nvr', 'k', '100.64.99.99', 1)`, a.ID)
	if err == nil || !strings.Contains(err.Error(), "virtual device holds") {
		t.Errorf("direct insert under a virtual device's name: %v", err)
	}
}

func TestVirtualDeviceLimit(t *testing.T) {
	s, _ := newStore(t)
	a := mustAccount(t, s, "acme")
	gw := mustRegister(t, s, a.ID, "gw")
	for i := range MaxVirtualDevices {
		mustVDev(t, s, gw.ID, fmt.Sprintf("v%d", i), fmt.Sprintf("10.0.%d.%d", i/200, 1+i%200))
	}
	_, _, err := s.AddVirtualDevice(context.Background(), gw.ID, VirtualSpec{Name: "one-more", LANIP: netip.MustParseAddr("10.9.9.9")})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("virtual device past the limit: %v", err)
	}
}

// TestMigrationToGateways: a database from before gateways (schema 3) keeps its devices,
// which advertise nothing, and takes virtual devices.
func TestMigrationToGateways(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "broker.db")
	old, err := open(ctx, path, Options{Now: time.Now}, migrations[:3])
	if err != nil {
		t.Fatal(err)
	}
	mustAccount(t, old, "acme")
	if _, err := old.db.Exec(`INSERT INTO devices (id, account_id, name, public_key, address, endpoints, created_at, nat)
		VALUES ('d1', 1, 'gw', ?, '100.64.0.1', '[]', 1, 'easy')`, newPub(t).String()); err != nil {
		t.Fatal(err)
	}
	old.Close()
	s := openAt(t, path, &clock{t: time.Now()})
	d, err := s.DeviceByID(ctx, "d1")
	if err != nil || d.NAT != "easy" || len(d.Advertised) != 0 || len(d.Approved) != 0 {
		t.Fatalf("device after migration: %+v, %v", d, err)
	}
	v := mustVDev(t, s, "d1", "camera", "192.168.1.50")
	if v.Address == d.Address {
		t.Fatalf("virtual device took the device's address %s", v.Address)
	}
	if d, _, err := s.SetAdvertisedRoutes(ctx, "d1", prefixes("192.168.1.0/24")); err != nil || len(d.Advertised) != 1 {
		t.Fatalf("advertise after migration: %+v, %v", d, err)
	}
}
