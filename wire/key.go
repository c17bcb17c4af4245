package wire

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

	"golang.org/x/crypto/curve25519"
)

// Key is a Curve25519 key (a WireGuard public or private key), base64 in JSON as wg(8) prints it.
type Key [32]byte

// ParseKey decodes a base64 key as printed by wg(8).
func ParseKey(s string) (Key, error) {
	var k Key
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return k, fmt.Errorf("key %q is not base64: %w", s, err)
	}
	if len(b) != len(k) {
		return k, fmt.Errorf("key %q is %d bytes, want 32", s, len(b))
	}
	copy(k[:], b)
	return k, nil
}

// NewPrivateKey returns a fresh, clamped Curve25519 private key.
func NewPrivateKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return k, fmt.Errorf("generate private key: %w", err)
	}
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k, nil
}

// Public returns the public key of private key k.
func (k Key) Public() Key {
	var pub Key
	out, err := curve25519.X25519(k[:], curve25519.Basepoint)
	if err != nil {
		// Only a low-order input fails, and the basepoint is not one.
		panic(err)
	}
	copy(pub[:], out)
	return pub
}

// IsZero reports whether k is all zeroes (unset).
func (k Key) IsZero() bool { return k == Key{} }

func (k Key) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// Hex is the form wireguard-go's IpcSet takes.
func (k Key) Hex() string { return fmt.Sprintf("%x", k[:]) }

func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

func (k *Key) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		return errors.New("empty key")
	}
	p, err := ParseKey(string(b))
	if err != nil {
		return err
	}
	*k = p
	return nil
}
