package store

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/weftmesh/weft/wire"
)

func relayNames(rs []Relay) []string {
	var out []string
	for _, r := range rs {
		n := r.Name
		if !r.Global() {
			n = r.Account + "/" + n
		}
		out = append(out, n)
	}
	return out
}

func TestRelays(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	mustAccount(t, s, "acme")
	mustAccount(t, s, "beta")
	key := newPub(t)
	add := func(account, name string) error {
		_, err := s.AddRelay(ctx, RelaySpec{Account: account, Name: name, UDP: "relay.example.com:3479", PublicKey: key})
		return err
	}
	for _, r := range [][2]string{{"", "zeta"}, {"", "alpha"}, {"acme", "home"}, {"beta", "home"}, {"acme", "office"}} {
		if err := add(r[0], r[1]); err != nil {
			t.Fatalf("add %v: %v", r, err)
		}
	}
	// A name is unique among the globals and each account's own.
	for _, r := range [][2]string{{"", "alpha"}, {"acme", "alpha"}, {"", "home"}, {"acme", "office"}} {
		if err := add(r[0], r[1]); !errors.Is(err, ErrExists) {
			t.Errorf("add %v again: err = %v, want ErrExists", r, err)
		}
	}
	if err := add("nope", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("add to unknown account: err = %v", err)
	}

	got, err := s.Relays(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"acme/home", "acme/office", "alpha", "zeta"}; !slices.Equal(relayNames(got), want) {
		t.Fatalf("acme's relays %v, want %v", relayNames(got), want)
	}
	if got[0].UDP != "relay.example.com:3479" || got[0].PublicKey != key || got[0].AccountID == 0 {
		t.Fatalf("stored relay %+v", got[0])
	}
	all, err := s.Relays(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"acme/home", "acme/office", "beta/home", "alpha", "zeta"}; !slices.Equal(relayNames(all), want) {
		t.Fatalf("all relays %v, want %v", relayNames(all), want)
	}

	r, err := s.RemoveRelay(ctx, "acme", "home")
	if err != nil || r.Name != "home" || r.Account != "acme" {
		t.Fatalf("remove acme/home: %+v, %v", r, err)
	}
	if _, err := s.RemoveRelay(ctx, "acme", "home"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove twice: %v", err)
	}
	if _, err := s.RemoveRelay(ctx, "", "home"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove a private relay as global: %v", err)
	}
	if _, err := s.RemoveRelay(ctx, "", "zeta"); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Relays(ctx, "beta")
	if want := []string{"beta/home", "alpha"}; !slices.Equal(relayNames(got), want) {
		t.Fatalf("beta's relays after removals %v, want %v", relayNames(got), want)
	}
}

func TestRelayValidation(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	key := newPub(t)
	for _, spec := range []RelaySpec{
		{Name: "Bad Name", UDP: "192.0.2.1:3479", PublicKey: key},
		{Name: "r", PublicKey: key},
		{Name: "r", UDP: "192.0.2.1", PublicKey: key},
		{Name: "r", UDP: "192.0.2.1:0", PublicKey: key},
		{Name: "r", UDP: "192.0.2.1:70000", PublicKey: key},
		{Name: "r", TLS: ":443", PublicKey: key},
		{Name: "r", TLS: "bad_host!:443", PublicKey: key},
		{Name: "r", UDP: "192.0.2.1:3479"},
	} {
		if _, err := s.AddRelay(ctx, spec); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: err = %v, want ErrInvalid", spec, err)
		}
	}
	if all, _ := s.Relays(ctx, ""); len(all) != 0 {
		t.Fatalf("invalid relays stored: %v", all)
	}
	for _, spec := range []RelaySpec{
		{Name: "v6", UDP: "[2001:db8::1]:3479", PublicKey: key},
		{Name: "tls", TLS: "relay.example.com:443", PublicKey: key},
	} {
		if _, err := s.AddRelay(ctx, spec); err != nil {
			t.Errorf("%+v: %v", spec, err)
		}
	}
}

func TestReportEndpoints(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	mustAccount(t, s, "acme")
	r, err := s.RegisterWithAuthKey(ctx, mustKey(t, s, "acme", AuthKeyOptions{Reusable: true}), spec(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	refl := []netip.AddrPort{netip.MustParseAddrPort("203.0.113.7:40001")}
	rep := EndpointReport{ListenPort: 51820, Reflexive: refl, NAT: wire.NATEasy,
		Endpoints: []netip.AddrPort{netip.MustParseAddrPort("203.0.113.7:51820"), refl[0]}}
	d, changed, err := s.ReportEndpoints(ctx, r.Device.ID, rep)
	if err != nil || !changed || d.NAT != wire.NATEasy || !slices.Equal(d.Reflexive, refl) || !slices.Equal(d.Endpoints, rep.Endpoints) {
		t.Fatalf("report: %+v changed=%v err=%v", d, changed, err)
	}
	if _, changed, err := s.ReportEndpoints(ctx, r.Device.ID, rep); err != nil || changed {
		t.Fatalf("same report again: changed=%v err=%v, want unchanged", changed, err)
	}
	rep.NAT = wire.NATSymmetric
	if _, changed, _ := s.ReportEndpoints(ctx, r.Device.ID, rep); !changed {
		t.Fatal("NAT change not reported as a change")
	}
	rep.NAT = "cone"
	if _, _, err := s.ReportEndpoints(ctx, r.Device.ID, rep); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown NAT: err = %v", err)
	}
	if d, _ := s.DeviceByID(ctx, r.Device.ID); d.NAT != wire.NATSymmetric {
		t.Fatalf("refused report changed the device: %+v", d)
	}
	// Registering again starts from a clean report.
	sp := spec(t, "a")
	sp.PublicKey = r.Device.PublicKey
	r2, err := s.RegisterWithAuthKey(ctx, mustKey(t, s, "acme", AuthKeyOptions{}), sp)
	if err != nil || r2.Device.NAT != "" || len(r2.Device.Reflexive) != 0 {
		t.Fatalf("re-register: %+v, %v", r2.Device, err)
	}
}

// TestMigrationKeepsDevices: a database from before NAT traversal (schema 2) gets the
// new columns with empty values and keeps its devices.
func TestMigrationKeepsDevices(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "broker.db")
	old, err := open(ctx, path, Options{Now: time.Now}, migrations[:2])
	if err != nil {
		t.Fatal(err)
	}
	mustAccount(t, old, "acme")
	if _, err := old.db.Exec(`INSERT INTO devices (id, account_id, name, public_key, address, endpoints, created_at)
		VALUES ('d1', 1, 'a', ?, '100.64.0.1', '["192.0.2.1:51820"]', 1)`, newPub(t).String()); err != nil {
		t.Fatal(err)
	}
	old.Close()
	s := openAt(t, path, &clock{t: time.Now()})
	d, err := s.DeviceByID(ctx, "d1")
	if err != nil || d.NAT != "" || len(d.Reflexive) != 0 || len(d.Endpoints) != 1 {
		t.Fatalf("device after migration: %+v, %v", d, err)
	}
	if rs, err := s.Relays(ctx, ""); err != nil || len(rs) != 0 {
		t.Fatalf("relays after migration: %v, %v", rs, err)
	}
}
