package relay

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
	"os"
	"path/filepath"
	"time"

	"github.com/weftmesh/weft/wire"
)

// Files in the relay's data directory.
const (
	KeyFile     = "relay.key"     // static X25519 private key, base64 (0600)
	TLSCertFile = "relay-tls.crt" // self-signed certificate when none is given
	TLSKeyFile  = "relay-tls.key" // its private key (0600)
)

// LoadOrCreateKey reads the relay's private key from dir, generating it on first use.
// dir must exist.
func LoadOrCreateKey(dir string) (wire.Key, error) {
	path := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := wire.ParseKey(string(bytes.TrimSpace(b)))
		if err != nil {
			return k, fmt.Errorf("relay key %s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return wire.Key{}, fmt.Errorf("read relay key: %w", err)
	}
	if err := checkDir(dir); err != nil {
		return wire.Key{}, err
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

func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data directory %s is not a directory", dir)
	}
	return nil
}

// LoadOrCreateCert returns the TLS certificate in certFile and keyFile if both are
// given, else the self-signed one in dir, generated on first use. Clients do not verify
// it: they authenticate the relay by its X25519 key, bound to the TLS session.
func LoadOrCreateCert(dir, certFile, keyFile string) (tls.Certificate, error) {
	if certFile != "" || keyFile != "" {
		if certFile == "" || keyFile == "" {
			return tls.Certificate{}, errors.New("give both a TLS certificate and its key, or neither")
		}
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return c, fmt.Errorf("load TLS certificate: %w", err)
		}
		return c, nil
	}
	cp, kp := filepath.Join(dir, TLSCertFile), filepath.Join(dir, TLSKeyFile)
	c, err := tls.LoadX509KeyPair(cp, kp)
	if err == nil {
		return c, nil
	}
	_, errC := os.Stat(cp)
	_, errK := os.Stat(kp)
	if !errors.Is(errC, os.ErrNotExist) || !errors.Is(errK, os.ErrNotExist) {
		return c, fmt.Errorf("load TLS certificate from %s: %w", dir, err)
	}
	if err := checkDir(dir); err != nil {
		return c, err
	}
	certPEM, keyPEM, err := selfSigned(time.Now())
	if err != nil {
		return c, err
	}
	if err := atomicfile.Write(kp, keyPEM, 0o600); err != nil {
		return c, err
	}
	if err := atomicfile.Write(cp, certPEM, 0o644); err != nil {
		return c, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

func selfSigned(now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "weft relay"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(20, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create TLS certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode TLS key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}
