package broker

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/weftmesh/weft/wire"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNeededSANs(t *testing.T) {
	got, err := neededSANs("0.0.0.0:443", []string{"broker.example.com", " 192.0.2.5", "Broker.Example.com", ""})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.1", "192.0.2.5", "::1", "broker.example.com", "localhost"}
	if !slices.Equal(got, want) {
		t.Fatalf("SANs %v, want %v", got, want)
	}
	got, _ = neededSANs("10.0.0.1:443", nil)
	if !slices.Contains(got, "10.0.0.1") {
		t.Fatalf("listen IP missing from %v", got)
	}
	got, _ = neededSANs("[::]:443", nil)
	if slices.Contains(got, "::") {
		t.Fatalf("unspecified listen address in %v", got)
	}
	got, _ = neededSANs("broker.lan:443", nil)
	if !slices.Contains(got, "broker.lan") {
		t.Fatalf("listen name missing from %v", got)
	}
	if _, err := neededSANs(":443", []string{"http://x"}); err == nil {
		t.Fatal("URL accepted as a SAN")
	}
}

func TestGeneratedTLSReusesCAAndAddsSANs(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	if _, err := ensureServerCert(dir, []string{"127.0.0.1", "localhost"}, now); err != nil {
		t.Fatal(err)
	}
	ca1 := readCert(t, filepath.Join(dir, CAFile))
	srv1 := readCert(t, filepath.Join(dir, serverFile))
	if !ca1.IsCA || ca1.NotAfter.Sub(now) < 9*365*24*time.Hour {
		t.Fatalf("CA: IsCA %v, expires %s", ca1.IsCA, ca1.NotAfter)
	}
	for _, f := range []string{caKeyFile, serverKeyFile} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, %v; want 0600", f, fi.Mode(), err)
		}
	}

	// Same names: nothing is reissued.
	if _, err := ensureServerCert(dir, []string{"127.0.0.1", "localhost"}, now); err != nil {
		t.Fatal(err)
	}
	if srv := readCert(t, filepath.Join(dir, serverFile)); srv.SerialNumber.Cmp(srv1.SerialNumber) != 0 {
		t.Fatal("server certificate reissued although it covered every name")
	}

	// A new name: reissued, by the same CA.
	if _, err := ensureServerCert(dir, []string{"127.0.0.1", "localhost", "broker.example.com"}, now); err != nil {
		t.Fatal(err)
	}
	ca2 := readCert(t, filepath.Join(dir, CAFile))
	srv2 := readCert(t, filepath.Join(dir, serverFile))
	if !ca2.Equal(ca1) {
		t.Fatal("CA replaced")
	}
	if srv2.SerialNumber.Cmp(srv1.SerialNumber) == 0 || srv2.VerifyHostname("broker.example.com") != nil {
		t.Fatal("server certificate not reissued for the new name")
	}
	if err := srv2.CheckSignatureFrom(ca1); err != nil {
		t.Fatalf("new server certificate not signed by the CA: %v", err)
	}

	// Close to expiry: reissued.
	if _, err := ensureServerCert(dir, []string{"localhost"}, now.Add(serverLifetime-renewBefore/2)); err != nil {
		t.Fatal(err)
	}
	if srv := readCert(t, filepath.Join(dir, serverFile)); srv.SerialNumber.Cmp(srv2.SerialNumber) == 0 {
		t.Fatal("certificate close to expiry not reissued")
	}
}

func TestBrokerRestartKeepsIdentity(t *testing.T) {
	dir := t.TempDir()
	tb := startBroker(t, func(c *Config) { c.DataDir = dir })
	key := tb.PublicKey()
	tb.setupAccount(t, "acme")
	d := tb.newDevice(t, "a")
	d.register(t, tb.authKey(t, "acme", false))
	fi, err := os.Stat(filepath.Join(dir, "broker.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("broker.key mode %v, %v", fi.Mode(), err)
	}
	ca := readCert(t, filepath.Join(dir, CAFile))
	// Stop the first broker, then start a second on the same data directory.
	tb.stopForTest(t)

	tb2 := startBroker(t, func(c *Config) { c.DataDir = dir; c.TLSSANs = []string{"broker.example.com"} })
	if tb2.PublicKey() != key {
		t.Fatal("broker key changed across restarts")
	}
	if !readCert(t, filepath.Join(dir, CAFile)).Equal(ca) {
		t.Fatal("CA changed across restarts")
	}
	if readCert(t, filepath.Join(dir, serverFile)).VerifyHostname("broker.example.com") != nil {
		t.Fatal("new SAN not in the server certificate")
	}
	// The old device is still known, at its address; the old client's CA still works.
	got, err := tb2.store.DeviceByKey(t.Context(), d.priv.Public())
	if err != nil || got.Address != d.Address {
		t.Fatalf("after restart: %+v, %v; want address %s", got, err, d.Address)
	}
	d.tb = tb2
	if _, status, body := d.challenge(t); status != http.StatusOK {
		t.Fatalf("challenge after restart: %d %s", status, body)
	}
}

func TestGivenCertificate(t *testing.T) {
	// Make a certificate elsewhere and hand it to the broker.
	other := t.TempDir()
	if _, err := ensureServerCert(other, []string{"127.0.0.1"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tb := startBroker(t, func(c *Config) {
		c.DataDir = dir
		c.TLSCert = filepath.Join(other, serverFile)
		c.TLSKey = filepath.Join(other, serverKeyFile)
	})
	if _, err := os.Stat(filepath.Join(dir, CAFile)); err == nil {
		t.Fatal("broker made its own CA although a certificate was given")
	}
	hc := tlsClient(t, filepath.Join(other, CAFile))
	resp, err := hc.Get(tb.url + wire.PathInfo)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("info: %d", resp.StatusCode)
	}
	// A client that does not trust that CA is refused.
	bad := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}}}
	if resp, err := bad.Get(tb.url + wire.PathInfo); err == nil {
		resp.Body.Close()
		t.Fatal("untrusted client connected")
	}

	if _, err := New(t.Context(), Config{DataDir: t.TempDir(), Listen: ":0", TLSCert: "x"}); err == nil {
		t.Fatal("--tls-cert without --tls-key accepted")
	}
}
