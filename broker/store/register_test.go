package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/wire"
)

func spec(t *testing.T, name string) DeviceSpec {
	return DeviceSpec{PublicKey: newPub(t), Name: name, ListenPort: 51820,
		Endpoints: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:51820")}}
}

func TestSingleUseKeyUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	mustAccount(t, s, "acme")
	key := mustKey(t, s, "acme", AuthKeyOptions{})
	const n = 50
	specs := make([]DeviceSpec, n)
	for i := range specs {
		specs[i] = spec(t, fmt.Sprintf("dev%d", i))
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = s.RegisterWithAuthKey(ctx, key, specs[i])
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrAuthKeyUsed):
			t.Errorf("registration %d: %v, want ErrAuthKeyUsed", i, err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d registrations succeeded with one single-use key, want 1", ok)
	}
	devs, err := s.AccountDevices(ctx, "acme")
	if err != nil || len(devs) != 1 {
		t.Fatalf("account has %d devices (%v), want 1", len(devs), err)
	}
}

func TestReusableKeyUnderConcurrencyGivesDistinctAddresses(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	mustAccount(t, s, "acme")
	key := mustKey(t, s, "acme", AuthKeyOptions{Reusable: true})
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		sp := spec(t, fmt.Sprintf("dev%d", i))
		wg.Go(func() {
			if _, err := s.RegisterWithAuthKey(ctx, key, sp); err != nil {
				t.Errorf("register %s: %v", sp.Name, err)
			}
		})
	}
	wg.Wait()
	devs, _ := s.AccountDevices(ctx, "acme")
	seen := map[netip.Addr]bool{}
	for _, d := range devs {
		if seen[d.Address] || !MeshPrefix.Contains(d.Address) {
			t.Fatalf("address %s duplicated or outside %s", d.Address, MeshPrefix)
		}
		seen[d.Address] = true
	}
	if len(devs) != n {
		t.Fatalf("%d devices, want %d", len(devs), n)
	}
}

func TestAuthKeyFailures(t *testing.T) {
	ctx := context.Background()
	s, clk := newStore(t)
	mustAccount(t, s, "acme")
	single := mustKey(t, s, "acme", AuthKeyOptions{})
	expiring := mustKey(t, s, "acme", AuthKeyOptions{Reusable: true, Expires: time.Hour})

	if _, err := s.RegisterWithAuthKey(ctx, single, spec(t, "one")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RegisterWithAuthKey(ctx, single, spec(t, "two")); !errors.Is(err, ErrAuthKeyUsed) {
		t.Fatalf("reused single-use key: err = %v, want ErrAuthKeyUsed", err)
	}
	if _, err := s.RegisterWithAuthKey(ctx, expiring, spec(t, "three")); err != nil {
		t.Fatalf("fresh expiring key: %v", err)
	}
	clk.Advance(time.Hour)
	if _, err := s.RegisterWithAuthKey(ctx, expiring, spec(t, "four")); !errors.Is(err, ErrAuthKeyExpired) {
		t.Fatalf("expired key: err = %v, want ErrAuthKeyExpired", err)
	}

	id, _, _ := strings.Cut(strings.TrimPrefix(single, authKeyPrefix), "-")
	wrongSecret := authKeyPrefix + id + "-" + strings.Repeat("A", 43)
	unknownID := authKeyPrefix + "000000000000" + single[len(authKeyPrefix)+authKeyIDLen:]
	for _, k := range []string{wrongSecret, unknownID, "weftkey-nope", "", "tskey-abc", single + "x"} {
		if _, err := s.RegisterWithAuthKey(ctx, k, spec(t, "five")); !errors.Is(err, ErrAuthKeyUnknown) {
			t.Errorf("key %q: err = %v, want ErrAuthKeyUnknown", k, err)
		}
	}
	devs, _ := s.AccountDevices(ctx, "acme")
	if len(devs) != 2 {
		t.Fatalf("%d devices after failed registrations, want 2", len(devs))
	}
	if _, err := s.CreateAuthKey(ctx, "nope", AuthKeyOptions{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("key for unknown account: err = %v, want ErrNotFound", err)
	}
}

func TestAuthKeySecretNotStored(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, filepath.Join(dir, "broker.db"), &clock{t: time.Now()})
	mustAccount(t, s, "acme")
	key := mustKey(t, s, "acme", AuthKeyOptions{})
	secret := key[strings.LastIndex(key, "-")+1:]
	if len(secret) < 40 {
		// The secret is base64url and may itself contain '-'; take everything after the id.
		secret = key[len(authKeyPrefix)+authKeyIDLen+1:]
	}
	s.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "broker.db*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Fatalf("%s contains the auth key secret", f)
		}
	}
}

func TestReRegistration(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	mustAccount(t, s, "acme")
	key := mustKey(t, s, "acme", AuthKeyOptions{Reusable: true})

	first := spec(t, "laptop")
	r1, err := s.RegisterWithAuthKey(ctx, key, first)
	if err != nil || !r1.Created {
		t.Fatalf("first registration: %+v, %v", r1, err)
	}
	other, err := s.RegisterWithAuthKey(ctx, key, spec(t, "desktop"))
	if err != nil {
		t.Fatal(err)
	}

	// Same key again, renamed: same device and address.
	renamed := first
	renamed.Name = "laptop2"
	r2, err := s.RegisterWithAuthKey(ctx, key, renamed)
	if err != nil || r2.Created || r2.Device.ID != r1.Device.ID || r2.Device.Address != r1.Device.Address || r2.Device.Name != "laptop2" {
		t.Fatalf("same-key re-registration: %+v, %v; want device %s renamed, same address", r2, err, r1.Device.ID)
	}
	// Renaming onto another device's name gets the next free suffix.
	clash := first
	clash.Name = "desktop"
	if r, err := s.RegisterWithAuthKey(ctx, key, clash); err != nil || r.Device.ID != r1.Device.ID || r.Device.Name != "desktop-2" {
		t.Fatalf("rename onto taken name: %+v, %v; want device %s renamed desktop-2", r.Device, err, r1.Device.ID)
	}
	back := first
	back.Name = "laptop2"
	if _, err := s.RegisterWithAuthKey(ctx, key, back); err != nil {
		t.Fatal(err)
	}
	// A second machine under the name of an online device is a new device with a suffix.
	twin := spec(t, "desktop")
	twin.Online = func(_ int64, id string) bool { return id == other.Device.ID }
	if r, err := s.RegisterWithAuthKey(ctx, key, twin); err != nil || !r.Created || r.Device.Name != "desktop-2" || !r.ReplacedKey.IsZero() {
		t.Fatalf("same name as an online device: %+v, %v; want a new device desktop-2", r, err)
	}

	// Same name, new key: the device takes the key, keeps its address; the old key is revoked.
	fresh := spec(t, "laptop2")
	r3, err := s.RegisterWithAuthKey(ctx, key, fresh)
	if err != nil {
		t.Fatal(err)
	}
	if r3.Created || r3.Device.ID != r1.Device.ID || r3.Device.Address != r1.Device.Address ||
		r3.Device.PublicKey != fresh.PublicKey || r3.ReplacedKey != first.PublicKey {
		t.Fatalf("same-name re-registration: %+v", r3)
	}
	var rev *RevokedError
	if _, err := s.DeviceByKey(ctx, first.PublicKey); !errors.As(err, &rev) || !strings.Contains(rev.Reason, "replaced by a new registration of laptop2") {
		t.Fatalf("old key: err = %v, want RevokedError naming the replacement", err)
	}
	if d, err := s.DeviceByKey(ctx, fresh.PublicKey); err != nil || d.ID != r1.Device.ID {
		t.Fatalf("new key: %+v, %v", d, err)
	}
	if _, err := s.DeviceByKey(ctx, newPub(t)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown key: err = %v, want ErrNotFound", err)
	}

	// The same key in another account is refused.
	mustAccount(t, s, "beta")
	bkey := mustKey(t, s, "beta", AuthKeyOptions{})
	if _, err := s.RegisterWithAuthKey(ctx, bkey, fresh); !errors.Is(err, ErrConflict) {
		t.Fatalf("key registered in another account: err = %v, want ErrConflict", err)
	}
	// ... and the failed attempt did not consume the single-use key.
	if _, err := s.RegisterWithAuthKey(ctx, bkey, spec(t, "laptop2")); err != nil {
		t.Fatalf("single-use key after a failed registration: %v", err)
	}
	devs, _ := s.AccountDevices(ctx, "acme")
	if len(devs) != 3 || devs[0].ID != other.Device.ID || devs[1].Name != "desktop-2" {
		t.Fatalf("acme devices = %+v", devs)
	}
}

func TestPasswordRegistrationAndRemoval(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	mustAccount(t, s, "acme")
	if err := s.AddUser(ctx, "acme", "ann@example.com", "correct horse"); err != nil {
		t.Fatal(err)
	}
	a, err := s.CheckPassword(ctx, "acme", "ann@example.com", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	sp := spec(t, "phone")
	r, err := s.RegisterInAccount(ctx, a.ID, sp)
	if err != nil || r.Device.Account != "acme" {
		t.Fatalf("register: %+v, %v", r, err)
	}
	if _, err := s.RemoveDevice(ctx, "acme", "nosuch", "removed by administrator"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove unknown: err = %v, want ErrNotFound", err)
	}
	removed, err := s.RemoveDevice(ctx, "acme", "phone", "removed by administrator")
	if err != nil || removed.ID != r.Device.ID {
		t.Fatalf("remove: %+v, %v", removed, err)
	}
	var rev *RevokedError
	if _, err := s.DeviceByKey(ctx, sp.PublicKey); !errors.As(err, &rev) || rev.Reason != "removed by administrator" {
		t.Fatalf("removed key: err = %v", err)
	}
	// Registering again with the same key makes a new device and lifts the revocation.
	r2, err := s.RegisterInAccount(ctx, a.ID, sp)
	if err != nil || !r2.Created || r2.Device.ID == r.Device.ID {
		t.Fatalf("re-register after removal: %+v, %v", r2, err)
	}
	if _, err := s.DeviceByKey(ctx, sp.PublicKey); err != nil {
		t.Fatalf("key after re-registration: %v", err)
	}
	if _, err := s.RemoveDevice(ctx, "acme", r2.Device.ID, "x"); err != nil {
		t.Fatalf("remove by id: %v", err)
	}
}

func TestRestartKeepsAddresses(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "broker.db")
	clk := &clock{t: time.Now()}
	s := openAt(t, path, clk)
	mustAccount(t, s, "acme")
	key := mustKey(t, s, "acme", AuthKeyOptions{Reusable: true})
	want := map[string]netip.Addr{}
	specs := map[string]DeviceSpec{}
	for _, n := range []string{"a", "b", "c"} {
		sp := spec(t, n)
		specs[n] = sp
		r, err := s.RegisterWithAuthKey(ctx, key, sp)
		if err != nil {
			t.Fatal(err)
		}
		want[n] = r.Device.Address
	}
	s.Close()

	s = openAt(t, path, clk)
	devs, err := s.AccountDevices(ctx, "acme")
	if err != nil || len(devs) != 3 {
		t.Fatalf("after restart: %d devices, %v", len(devs), err)
	}
	for _, d := range devs {
		if d.Address != want[d.Name] {
			t.Fatalf("%s: address %s after restart, want %s", d.Name, d.Address, want[d.Name])
		}
		if len(d.Endpoints) != 1 || d.ListenPort != 51820 {
			t.Fatalf("%s: endpoints %v port %d not kept", d.Name, d.Endpoints, d.ListenPort)
		}
	}
	// Re-registering after the restart keeps the address too, and a new device gets a new one.
	r, err := s.RegisterWithAuthKey(ctx, key, spec(t, "b"))
	if err != nil || r.Device.Address != want["b"] {
		t.Fatalf("re-register b after restart: %v, %v; want address %s", r.Device.Address, err, want["b"])
	}
	r, err = s.RegisterWithAuthKey(ctx, key, spec(t, "d"))
	if err != nil {
		t.Fatal(err)
	}
	for n, a := range want {
		if r.Device.Address == a {
			t.Fatalf("new device got %s, the address of %s", a, n)
		}
	}
}

func TestSetEndpointsAndValidation(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	mustAccount(t, s, "acme")
	key := mustKey(t, s, "acme", AuthKeyOptions{Reusable: true})
	r, err := s.RegisterWithAuthKey(ctx, key, spec(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	eps := []netip.AddrPort{netip.MustParseAddrPort("198.51.100.2:4000"), netip.MustParseAddrPort("[2001:db8::1]:4000")}
	d, err := s.SetEndpoints(ctx, r.Device.ID, 4000, eps)
	if err != nil || d.ListenPort != 4000 || len(d.Endpoints) != 2 || d.Endpoints[1] != eps[1] {
		t.Fatalf("set endpoints: %+v, %v", d, err)
	}
	if _, err := s.SetEndpoints(ctx, "nosuch", 1, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown device: err = %v", err)
	}
	bad := []DeviceSpec{
		{Name: "ok"},
		{PublicKey: newPub(t), Name: "Not OK"},
		{PublicKey: newPub(t), Name: "ok", ListenPort: 70000},
	}
	for _, b := range bad {
		if _, err := s.RegisterWithAuthKey(ctx, key, b); !errors.Is(err, ErrInvalid) {
			t.Errorf("spec %+v: err = %v, want ErrInvalid", b, err)
		}
	}
	var zero wire.Key
	if _, err := s.DeviceByKey(ctx, zero); !errors.Is(err, ErrNotFound) {
		t.Fatalf("zero key: %v", err)
	}
}
