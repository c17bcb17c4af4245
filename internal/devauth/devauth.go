// Package devauth proves that a request comes from the holder of a device's private key.
//
// WireGuard keys are Curve25519 Diffie–Hellman keys and cannot sign, so a device proves
// possession by MACing the request with a key derived from X25519(device, broker): only the
// device's private key or the broker's private key can compute it, and the broker stores no
// device secret. The MAC covers a single-use nonce the broker issued, the method, the path
// and a hash of the body, so a captured request cannot be replayed or altered.
package devauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/weftmesh/weft/wire"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/hkdf"
)

const label = "weft device auth v1"

// SharedKey derives the MAC key shared by the holder of priv and the holder of the
// private key behind pub.
func SharedKey(priv, pub wire.Key) ([32]byte, error) {
	var out [32]byte
	dh, err := curve25519.X25519(priv[:], pub[:])
	if err != nil {
		return out, fmt.Errorf("key agreement: %w", err)
	}
	if _, err := io.ReadFull(hkdf.New(sha256.New, dh, nil, []byte(label)), out[:]); err != nil {
		return out, fmt.Errorf("derive auth key: %w", err)
	}
	return out, nil
}

// MAC computes the proof for one request.
func MAC(shared [32]byte, method, path, nonce string, body []byte) []byte {
	bodySum := sha256.Sum256(body)
	m := hmac.New(sha256.New, shared[:])
	fmt.Fprintf(m, "%s\n%s\n%s\n%s\n%x", label, method, path, nonce, bodySum)
	return m.Sum(nil)
}

// Header is a parsed wire.AuthHeader.
type Header struct {
	Key   wire.Key
	Nonce string
	MAC   []byte
}

// Format renders h as the value of wire.AuthHeader.
func (h Header) Format() string {
	return fmt.Sprintf("key=%s, nonce=%s, mac=%s", h.Key, h.Nonce, base64.StdEncoding.EncodeToString(h.MAC))
}

// ParseHeader parses the value of wire.AuthHeader.
func ParseHeader(v string) (Header, error) {
	var h Header
	var haveKey bool
	for _, part := range strings.Split(v, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return h, fmt.Errorf("auth header: %q is not name=value", part)
		}
		switch name {
		case "key":
			k, err := wire.ParseKey(val)
			if err != nil {
				return h, fmt.Errorf("auth header: %w", err)
			}
			h.Key, haveKey = k, true
		case "nonce":
			h.Nonce = val
		case "mac":
			m, err := base64.StdEncoding.DecodeString(val)
			if err != nil {
				return h, fmt.Errorf("auth header: mac is not base64: %w", err)
			}
			h.MAC = m
		default:
			return h, fmt.Errorf("auth header: unknown field %q", name)
		}
	}
	if !haveKey || h.Nonce == "" || len(h.MAC) != sha256.Size {
		return h, errors.New("auth header: needs key, nonce and a 32-byte mac")
	}
	return h, nil
}

// Verify reports whether h proves possession of h.Key for this request, given the
// broker's private key. The nonce's freshness is the caller's to check.
func Verify(brokerPriv wire.Key, h Header, method, path string, body []byte) bool {
	shared, err := SharedKey(brokerPriv, h.Key)
	if err != nil {
		return false
	}
	return hmac.Equal(MAC(shared, method, path, h.Nonce, body), h.MAC)
}
