package broker

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/weftmesh/weft/internal/atomicfile"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/weftmesh/weft/wire"
)

// Files of the generated TLS material in the data directory.
const (
	CAFile        = "ca.pem"
	caKeyFile     = "ca-key.pem"
	serverFile    = "server.pem"
	serverKeyFile = "server-key.pem"

	caLifetime     = 10 * 365 * 24 * time.Hour
	serverLifetime = 825 * 24 * time.Hour
	renewBefore    = 30 * 24 * time.Hour
)

// setupTLS returns the TLS configuration of the API: the given certificate, or one
// signed by the broker's own CA, made (or remade) as needed.
func (b *Broker) setupTLS() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	switch {
	case b.cfg.TLSCert != "" && b.cfg.TLSKey != "":
		cert, err := tls.LoadX509KeyPair(b.cfg.TLSCert, b.cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("load TLS certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
		return cfg, nil
	case b.cfg.TLSCert != "" || b.cfg.TLSKey != "":
		return nil, errors.New("--tls-cert and --tls-key go together: give both or neither")
	}
	sans, err := neededSANs(b.cfg.Listen, b.cfg.TLSSANs)
	if err != nil {
		return nil, err
	}
	cert, err := ensureServerCert(b.cfg.DataDir, sans, time.Now())
	if err != nil {
		return nil, err
	}
	cfg.Certificates = []tls.Certificate{cert}
	b.log.Info("TLS certificate signed by the broker's CA; give devices its PEM",
		"ca", filepath.Join(b.cfg.DataDir, CAFile), "names", strings.Join(sans, ","))
	return cfg, nil
}

// neededSANs lists the names the server certificate must cover: the loopback names,
// the listen host if it names one host, and the extra SANs.
func neededSANs(listen string, extra []string) ([]string, error) {
	sans := []string{"localhost", "127.0.0.1", "::1"}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", listen, err)
	}
	if a, err := netip.ParseAddr(host); host != "" && (err != nil || !a.IsUnspecified()) {
		sans = append(sans, host)
	}
	for _, s := range extra {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if strings.ContainsAny(s, " /:@") && !isIP(s) {
			return nil, fmt.Errorf("TLS name %q is neither a host name nor an IP address", s)
		}
		sans = append(sans, s)
	}
	for i, s := range sans {
		if a, err := netip.ParseAddr(s); err == nil {
			sans[i] = a.Unmap().String()
		} else {
			sans[i] = strings.ToLower(s)
		}
	}
	slices.Sort(sans)
	return slices.Compact(sans), nil
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// ensureServerCert loads the CA (making it on first start) and returns a server
// certificate for sans, reusing the stored one if it covers them all, was signed by
// this CA and is not close to expiry.
func ensureServerCert(dir string, sans []string, now time.Time) (tls.Certificate, error) {
	ca, caKey, err := loadOrCreateCA(dir, now)
	if err != nil {
		return tls.Certificate{}, err
	}
	certPath, keyPath := filepath.Join(dir, serverFile), filepath.Join(dir, serverKeyFile)
	if cert, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil && certFits(cert.Leaf, ca, sans, now) {
		return cert, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "weft-broker"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(serverLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	for _, s := range sans {
		if a, err := netip.ParseAddr(s); err == nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, a.AsSlice())
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, s)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("sign server certificate: %w", err)
	}
	keyPEM, err := keyToPEM(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := atomicfile.Write(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := atomicfile.Write(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// certFits reports whether leaf was signed by ca, covers every name and lives on.
func certFits(leaf, ca *x509.Certificate, sans []string, now time.Time) bool {
	if leaf == nil || leaf.CheckSignatureFrom(ca) != nil || now.Add(renewBefore).After(leaf.NotAfter) {
		return false
	}
	for _, s := range sans {
		if leaf.VerifyHostname(s) != nil {
			return false
		}
	}
	return true
}

func loadOrCreateCA(dir string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPath, keyPath := filepath.Join(dir, CAFile), filepath.Join(dir, caKeyFile)
	certPEM, cerr := os.ReadFile(certPath)
	keyPEM, kerr := os.ReadFile(keyPath)
	switch {
	case cerr == nil && kerr == nil:
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, nil, fmt.Errorf("load CA from %s: %w", dir, err)
		}
		key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
		if !ok || !pair.Leaf.IsCA {
			return nil, nil, fmt.Errorf("%s is not an ECDSA CA certificate", certPath)
		}
		return pair.Leaf, key, nil
	case !errors.Is(cerr, os.ErrNotExist) && cerr != nil:
		return nil, nil, fmt.Errorf("read CA: %w", cerr)
	case !errors.Is(kerr, os.ErrNotExist) && kerr != nil:
		return nil, nil, fmt.Errorf("read CA key: %w", kerr)
	case cerr == nil || kerr == nil:
		return nil, nil, fmt.Errorf("%s and %s must both exist or both be absent", certPath, keyPath)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "weft-broker CA " + host},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA certificate: %w", err)
	}
	keyPEM, err = keyToPEM(key)
	if err != nil {
		return nil, nil, err
	}
	if err := atomicfile.Write(keyPath, keyPEM, 0o600); err != nil {
		return nil, nil, err
	}
	if err := atomicfile.Write(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse new CA certificate: %w", err)
	}
	return cert, key, nil
}

func keyToPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		// crypto/rand does not fail on supported platforms.
		panic(err)
	}
	return n
}

// loadOrCreateKey reads the broker's static key from path (base64, as wg(8) prints
// keys), generating it on first start.
func loadOrCreateKey(path string) (wire.Key, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := wire.ParseKey(string(bytes.TrimSpace(b)))
		if err != nil {
			return k, fmt.Errorf("broker key %s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return wire.Key{}, fmt.Errorf("read broker key: %w", err)
	}
	k, err := wire.NewPrivateKey()
	if err != nil {
		return k, err
	}
	if err := atomicfile.Write(path, []byte(k.String()+"\n"), 0o600); err != nil {
		return k, err
	}
	return k, nil
}
