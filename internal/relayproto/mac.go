package relayproto

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"

	"github.com/weftmesh/weft/internal/devauth"
	"github.com/weftmesh/weft/wire"
)

// Labels separate the relay's MACs from each other and from devauth's request MACs,
// which may use a key derived from the same pair of keys when the broker embeds a relay.
const (
	labelClient  = "weft relay v1 client auth\n"
	labelWelcome = "weft relay v1 relay welcome\n"
	labelRefused = "weft relay v1 relay refused\n"
)

// Transcript is what both ends MAC: who they are, over which channel, and both nonces.
type Transcript struct {
	Transport byte   // TransportUDP or TransportTLS
	Binding   []byte // TLS: BindingSize bytes of exported keying material; UDP: empty
	Relay     wire.Key
	Client    wire.Key
	Nonce     [NonceSize]byte
	Cookie    [CookieSize]byte
}

// SharedKey is the MAC key of a client and a relay: devauth.SharedKey, computable only
// with the client's or the relay's private key.
func SharedKey(priv, pub wire.Key) ([32]byte, error) { return devauth.SharedKey(priv, pub) }

func (t *Transcript) mac(shared [32]byte, label string) hash.Hash {
	m := hmac.New(sha256.New, shared[:])
	m.Write([]byte(label))
	m.Write([]byte{t.Transport, byte(len(t.Binding))})
	m.Write(t.Binding)
	m.Write(t.Relay[:])
	m.Write(t.Client[:])
	m.Write(t.Nonce[:])
	m.Write(t.Cookie[:])
	return m
}

func sum(m hash.Hash) (out [MACSize]byte) {
	m.Sum(out[:0])
	return out
}

// ClientMAC is the client's proof in Auth.
func ClientMAC(shared [32]byte, t *Transcript) [MACSize]byte {
	return sum(t.mac(shared, labelClient))
}

// WelcomeMAC is the relay's proof in Welcome; it also covers the session it grants.
func WelcomeMAC(shared [32]byte, t *Transcript, w *Welcome) [MACSize]byte {
	m := t.mac(shared, labelWelcome)
	m.Write(w.Token[:])
	var buf [2 + 18]byte
	b := binary.BigEndian.AppendUint16(buf[:0], w.LeaseSecs)
	m.Write(appendAddrPort(b, w.Observed))
	return sum(m)
}

// RefusedMAC is the relay's proof in Refused.
func RefusedMAC(shared [32]byte, t *Transcript, reason byte) [MACSize]byte {
	m := t.mac(shared, labelRefused)
	m.Write([]byte{reason})
	return sum(m)
}

// Equal compares two MACs in constant time.
func Equal(a, b [MACSize]byte) bool { return hmac.Equal(a[:], b[:]) }
