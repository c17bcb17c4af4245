package relay

import (
	"os"
	"path/filepath"
	"testing"
)

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	k2, err := LoadOrCreateKey(dir)
	if err != nil || k1 != k2 {
		t.Fatalf("key changed across loads (%v)", err)
	}
	if _, err := LoadOrCreateKey(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing data directory was accepted")
	}
	os.WriteFile(filepath.Join(dir, KeyFile), []byte("garbage\n"), 0o600)
	if _, err := LoadOrCreateKey(dir); err == nil {
		t.Fatal("a corrupt key file was accepted")
	}
}

func TestCertFile(t *testing.T) {
	dir := t.TempDir()
	c1, err := LoadOrCreateCert(dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, TLSKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("TLS key mode %v, %v; want 0600", fi.Mode(), err)
	}
	c2, err := LoadOrCreateCert(dir, "", "")
	if err != nil || string(c1.Certificate[0]) != string(c2.Certificate[0]) {
		t.Fatalf("certificate changed across loads (%v)", err)
	}
	// Given files are used as they are; half a pair is refused.
	c3, err := LoadOrCreateCert(t.TempDir(), filepath.Join(dir, TLSCertFile), filepath.Join(dir, TLSKeyFile))
	if err != nil || string(c3.Certificate[0]) != string(c1.Certificate[0]) {
		t.Fatalf("given certificate not used (%v)", err)
	}
	if _, err := LoadOrCreateCert(dir, filepath.Join(dir, TLSCertFile), ""); err == nil {
		t.Fatal("a certificate without its key was accepted")
	}
}

func TestConfigChecked(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("a relay without a key was accepted")
	}
	if _, err := New(Config{PrivateKey: newKey(t), Rate: -1}); err == nil {
		t.Error("a negative rate was accepted")
	}
}
