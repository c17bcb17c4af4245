package service

import (
	"github.com/weftmesh/weft/internal/atomicfile"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftmesh/weft/wire"
)

func testDevice(key wire.Key) *wire.Device {
	return &wire.Device{ID: "d1", Name: "laptop", PublicKey: key.Public(), Address: netip.MustParseAddr("100.64.0.5")}
}

func TestStoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Load(); ok || err != nil {
		t.Fatalf("fresh dir: ok=%v err=%v, want a missing state", ok, err)
	}
	if _, ok, err := s.LoadKey(); ok || err != nil {
		t.Fatalf("fresh dir: key ok=%v err=%v, want a missing key", ok, err)
	}
	key, _ := wire.NewPrivateKey()
	if err := s.SaveKey(key); err != nil {
		t.Fatal(err)
	}
	want := State{
		Broker: "https://broker.test", CAPEM: "pem", Device: testDevice(key), LoggedIn: true, WantedUp: true,
		Map: SavedMap{Complete: true, Peers: []wire.Device{{ID: "p1", Name: "desk", Address: netip.MustParseAddr("100.64.0.6")}}},
	}
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Load()
	if err != nil || !ok {
		t.Fatalf("load: ok=%v err=%v", ok, err)
	}
	if got.Broker != want.Broker || got.Device.Name != "laptop" || !got.Map.Complete || len(got.Map.Peers) != 1 || !got.WantedUp {
		t.Fatalf("round trip: got %+v", got)
	}
	gotKey, ok, err := s.LoadKey()
	if err != nil || !ok || gotKey != key {
		t.Fatalf("key round trip: ok=%v err=%v", ok, err)
	}
	for _, name := range []string{keyFile, stateFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("state dir holds %v, want only the key and the state", names)
	}
}

func TestAtomicWriteKeepsOldOnFailure(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := atomicfile.Write(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Renaming over a non-empty directory fails: the old file must survive and no
	// temporary file may remain.
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "child"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Write(filepath.Join(dir, "sub"), []byte("new"), 0o600); err == nil {
		t.Fatal("writing over a non-empty directory succeeded")
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatalf("old file now %q", b)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("temporary file %s left behind", e.Name())
		}
	}
}

func TestStoreCorruptFiles(t *testing.T) {
	dir := t.TempDir()
	s, _ := OpenStore(dir)
	if err := os.WriteFile(filepath.Join(dir, stateFile), []byte(`{"broker": "x", `), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Load(); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, stateFile)) {
		t.Fatalf("truncated state: %v, want an error naming the file", err)
	}
	if err := os.WriteFile(filepath.Join(dir, stateFile), []byte(`{"logged_in": true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Load(); err == nil || !strings.Contains(err.Error(), "inconsistent") {
		t.Fatalf("logged in without a device: %v, want an inconsistency error", err)
	}
	if err := os.WriteFile(filepath.Join(dir, keyFile), []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.LoadKey(); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, keyFile)) {
		t.Fatalf("corrupt key: %v, want an error naming the file", err)
	}
	// Open refuses to start rather than making a new identity.
	if _, err := Open(Config{StateDir: dir}); err == nil {
		t.Fatal("Open accepted a corrupt state directory")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, keyFile)); string(b) != "not a key\n" {
		t.Fatalf("Open replaced the corrupt key file: %q", b)
	}
}

func TestOpenIdentityChecks(t *testing.T) {
	key, _ := wire.NewPrivateKey()
	registered := State{Broker: "https://broker.test", Device: testDevice(key), LoggedIn: true}

	t.Run("fresh install makes a key", func(t *testing.T) {
		dir := t.TempDir()
		d, err := Open(Config{StateDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		s, _ := OpenStore(dir)
		k, ok, err := s.LoadKey()
		if err != nil || !ok || k != d.key {
			t.Fatalf("key on disk ok=%v err=%v, matches=%v", ok, err, k == d.key)
		}
	})
	t.Run("registered state without its key", func(t *testing.T) {
		dir := t.TempDir()
		s, _ := OpenStore(dir)
		if err := s.Save(registered); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(Config{StateDir: dir}); err == nil || !strings.Contains(err.Error(), "refusing") {
			t.Fatalf("got %v, want a refusal", err)
		}
		if _, ok, _ := s.LoadKey(); ok {
			t.Fatal("a new key was written")
		}
	})
	t.Run("key of another device", func(t *testing.T) {
		dir := t.TempDir()
		s, _ := OpenStore(dir)
		other, _ := wire.NewPrivateKey()
		if err := s.SaveKey(other); err != nil {
			t.Fatal(err)
		}
		if err := s.Save(registered); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(Config{StateDir: dir}); err == nil {
			t.Fatal("Open accepted a key that does not match the registered device")
		}
	})
}
