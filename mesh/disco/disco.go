// Package disco is the discovery packet codec: ping, pong and call-me-maybe messages,
// sealed between two devices' WireGuard keys (docs/NAT-TRAVERSAL.md, "Disco packets").
package disco

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/weftmesh/weft/wire"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
)

// Magic opens every disco packet. Its first byte is no WireGuard message type (1–4), no
// STUN message (whose first two bits are zero) and no relay frame (0xA1–0xA9).
const Magic = "\xF7wft"

// Sizes of the packet layout: magic | sender public key | nonce | sealed plaintext.
const (
	keyLen    = 32
	nonceLen  = chacha20poly1305.NonceSizeX
	headerLen = len(Magic) + keyLen + nonceLen
	// Overhead is what sealing adds to a plaintext: the header and the AEAD tag.
	Overhead = headerLen + chacha20poly1305.Overhead
)

// hkdfInfo separates the disco key from every other key derived from the same pair.
const hkdfInfo = "weft disco v1"

// Message types: the first plaintext byte.
const (
	typePing        = 1
	typePong        = 2
	typeCallMeMaybe = 3
	// typeCallMeMaybeOpened is a call-me-maybe that also lists the addresses of the
	// receiver the sender just opened its own NAT mapping towards.
	typeCallMeMaybeOpened = 4
	typeSpray             = 5
)

// Payload sizes.
const (
	addrLen = 16 + 2 // IPv6 (IPv4-mapped) address and big-endian port
	// MaxEndpoints bounds a call-me-maybe, so it fits any path MTU.
	MaxEndpoints = 32
)

// TxID names one ping; its pong echoes it.
type TxID [12]byte

// NewTxID returns a random transaction ID.
func NewTxID() TxID {
	var t TxID
	rand.Read(t[:]) // never fails (crypto/rand panics rather than return an error)
	return t
}

// Message is a Ping, a Pong or a CallMeMaybe.
type Message interface {
	appendTo(b []byte) []byte
}

// Ping asks the receiver to answer with a Pong on the path the ping came from.
type Ping struct {
	TxID TxID
}

// Pong answers a Ping.
type Pong struct {
	TxID TxID
	// Src is where the answerer saw the ping come from: the pinger's address as the
	// answerer sees it (its peer-reflexive address). Zero when the ping came through the relay.
	Src netip.AddrPort
}

// CallMeMaybe says "I am probing you now; probe me on these endpoints".
type CallMeMaybe struct {
	Endpoints []netip.AddrPort
	// Opened lists the receiver's addresses the sender just sent TTL-limited probes to:
	// its own NAT now lets packets from them in, so the receiver may ping from them at
	// full TTL without tripping the sender's NAT (docs/NAT-TRAVERSAL.md, "NAT traps
	// handled"). Sent as its own message type when not empty.
	Opened []netip.AddrPort
}

// Spray asks the receiver to ping many ports of Addr at once, from its WireGuard socket:
// the sender sits behind a NAT that gives every destination a new random port and has just
// opened Ports such mappings towards the receiver (from as many sockets), so a ping to a
// random port of Addr finds one of them often enough ("birthday" probing,
// docs/NAT-TRAVERSAL.md).
type Spray struct {
	Addr  netip.Addr
	Ports uint16
}

func (m *Spray) appendTo(b []byte) []byte {
	b = append(b, typeSpray)
	b = appendAddr(b, netip.AddrPortFrom(m.Addr, 0))
	return binary.BigEndian.AppendUint16(b, m.Ports)
}

func (m *Ping) appendTo(b []byte) []byte {
	b = append(b, typePing)
	return append(b, m.TxID[:]...)
}

func (m *Pong) appendTo(b []byte) []byte {
	b = append(b, typePong)
	b = append(b, m.TxID[:]...)
	return appendAddr(b, m.Src)
}

func (m *CallMeMaybe) appendTo(b []byte) []byte {
	eps, opened := m.Endpoints, m.Opened
	if len(eps) > MaxEndpoints {
		eps = eps[:MaxEndpoints]
	}
	if len(opened) > MaxEndpoints {
		opened = opened[:MaxEndpoints]
	}
	if len(opened) == 0 {
		b = append(b, typeCallMeMaybe)
	} else {
		// type | count of endpoints | endpoints | opened addresses
		b = append(b, typeCallMeMaybeOpened, byte(len(eps)))
	}
	for _, ep := range eps {
		b = appendAddr(b, ep)
	}
	for _, a := range opened {
		b = appendAddr(b, a)
	}
	return b
}

func appendAddr(b []byte, a netip.AddrPort) []byte {
	ip := a.Addr().As16() // the zero Addr gives all zeros
	b = append(b, ip[:]...)
	return binary.BigEndian.AppendUint16(b, a.Port())
}

// parseAddrs reads a list of addresses, skipping zero ones.
func parseAddrs(b []byte) []netip.AddrPort {
	var out []netip.AddrPort
	for ; len(b) >= addrLen; b = b[addrLen:] {
		if a := parseAddr(b); a.IsValid() {
			out = append(out, a)
		}
	}
	return out
}

func parseAddr(p []byte) netip.AddrPort {
	ip := netip.AddrFrom16([16]byte(p[:16])).Unmap()
	port := binary.BigEndian.Uint16(p[16:18])
	if ip.IsUnspecified() && port == 0 {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ip, port)
}

var (
	errShort    = errors.New("disco: packet too short")
	errMagic    = errors.New("disco: not a disco packet")
	errNotPeer  = errors.New("disco: sender is not a peer")
	errAuth     = errors.New("disco: authentication failed")
	errMalform  = errors.New("disco: malformed message")
	errSelfSent = errors.New("disco: packet claims to come from this device")
)

// Looks reports whether pkt starts like a disco packet (without authenticating it): the
// cheap test a demultiplexer makes.
func Looks(pkt []byte) bool {
	return len(pkt) >= Overhead+1 && string(pkt[:len(Magic)]) == Magic
}

// Seal encrypts msg from the holder of priv to peer. It derives the shared key each call;
// a Codec caches it.
func Seal(priv, peer wire.Key, msg Message) ([]byte, error) {
	aead, err := newAEAD(priv, peer)
	if err != nil {
		return nil, err
	}
	return seal(aead, priv.Public(), msg), nil
}

// Open authenticates and decrypts pkt for the holder of priv. isPeer says whether a
// sender key is a current peer; a packet from anyone else is refused before any key
// agreement, so strangers cannot make the device do work or answer.
func Open(priv wire.Key, pkt []byte, isPeer func(wire.Key) bool) (wire.Key, Message, error) {
	sender, err := checkHeader(pkt, priv.Public(), isPeer)
	if err != nil {
		return sender, nil, err
	}
	aead, err := newAEAD(priv, sender)
	if err != nil {
		return sender, nil, err
	}
	msg, err := open(aead, pkt)
	return sender, msg, err
}

func checkHeader(pkt []byte, self wire.Key, isPeer func(wire.Key) bool) (wire.Key, error) {
	var sender wire.Key
	if len(pkt) < len(Magic) || string(pkt[:len(Magic)]) != Magic {
		return sender, errMagic
	}
	if len(pkt) < Overhead+1 {
		return sender, errShort
	}
	copy(sender[:], pkt[len(Magic):])
	if sender == self {
		return sender, errSelfSent
	}
	if !isPeer(sender) {
		return sender, errNotPeer
	}
	return sender, nil
}

// newAEAD derives the key shared by priv and peer: HKDF-SHA256 over their X25519 result.
func newAEAD(priv, peer wire.Key) (cipher.AEAD, error) {
	dh, err := curve25519.X25519(priv[:], peer[:])
	if err != nil {
		return nil, fmt.Errorf("disco: key agreement with %s: %w", peer, err)
	}
	key, err := hkdf.Key(sha256.New, dh, nil, hkdfInfo, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("disco: derive key: %w", err)
	}
	return chacha20poly1305.NewX(key)
}

// seal lays out magic | sender | nonce | ciphertext. The header is the additional data, so
// a packet reflected back with its sender field rewritten fails authentication.
func seal(aead cipher.AEAD, sender wire.Key, msg Message) []byte {
	b := make([]byte, headerLen, headerLen+64)
	copy(b, Magic)
	copy(b[len(Magic):], sender[:])
	rand.Read(b[len(Magic)+keyLen : headerLen])
	plain := msg.appendTo(make([]byte, 0, 64))
	return aead.Seal(b, b[len(Magic)+keyLen:headerLen], plain, b[:headerLen])
}

func open(aead cipher.AEAD, pkt []byte) (Message, error) {
	plain, err := aead.Open(nil, pkt[len(Magic)+keyLen:headerLen], pkt[headerLen:], pkt[:headerLen])
	if err != nil {
		return nil, errAuth
	}
	return parse(plain)
}

// parse decodes a plaintext; lengths must be exact.
func parse(p []byte) (Message, error) {
	if len(p) == 0 {
		return nil, errMalform
	}
	body := p[1:]
	switch p[0] {
	case typePing:
		if len(body) != len(TxID{}) {
			return nil, fmt.Errorf("%w: ping of %d bytes", errMalform, len(body))
		}
		return &Ping{TxID: TxID(body)}, nil
	case typePong:
		if len(body) != len(TxID{})+addrLen {
			return nil, fmt.Errorf("%w: pong of %d bytes", errMalform, len(body))
		}
		return &Pong{TxID: TxID(body[:12]), Src: parseAddr(body[12:])}, nil
	case typeCallMeMaybe:
		if len(body)%addrLen != 0 || len(body)/addrLen > MaxEndpoints {
			return nil, fmt.Errorf("%w: call-me-maybe of %d bytes", errMalform, len(body))
		}
		return &CallMeMaybe{Endpoints: parseAddrs(body)}, nil
	case typeSpray:
		if len(body) != addrLen+2 {
			return nil, fmt.Errorf("%w: spray of %d bytes", errMalform, len(body))
		}
		ip := netip.AddrFrom16([16]byte(body[:16])).Unmap()
		if !ip.IsGlobalUnicast() || binary.BigEndian.Uint16(body[16:18]) != 0 {
			return nil, fmt.Errorf("%w: spray towards %s", errMalform, ip)
		}
		return &Spray{Addr: ip, Ports: binary.BigEndian.Uint16(body[18:])}, nil
	case typeCallMeMaybeOpened:
		if len(body) < 1 || (len(body)-1)%addrLen != 0 {
			return nil, fmt.Errorf("%w: call-me-maybe of %d bytes", errMalform, len(body))
		}
		n, rest := int(body[0]), body[1:]
		total := len(rest) / addrLen
		if n > MaxEndpoints || n > total || total-n > MaxEndpoints {
			return nil, fmt.Errorf("%w: call-me-maybe of %d bytes with %d endpoints", errMalform, len(body), n)
		}
		return &CallMeMaybe{Endpoints: parseAddrs(rest[:n*addrLen]), Opened: parseAddrs(rest[n*addrLen:])}, nil
	}
	return nil, fmt.Errorf("%w: unknown type %d", errMalform, p[0])
}

// maxCached bounds the Codec's key cache; past it, an arbitrary entry makes room.
const maxCached = 1024

// Codec seals and opens disco packets for one private key, caching the key shared with
// each peer. It is safe for concurrent use.
type Codec struct {
	priv wire.Key
	pub  wire.Key

	mu   sync.Mutex // guards keys
	keys map[wire.Key]cipher.AEAD
}

// NewCodec returns a Codec for the holder of priv.
func NewCodec(priv wire.Key) *Codec {
	return &Codec{priv: priv, pub: priv.Public(), keys: map[wire.Key]cipher.AEAD{}}
}

// Public is the codec's own public key, the sender of everything it seals.
func (c *Codec) Public() wire.Key { return c.pub }

func (c *Codec) aead(peer wire.Key) (cipher.AEAD, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a, ok := c.keys[peer]; ok {
		return a, nil
	}
	a, err := newAEAD(c.priv, peer)
	if err != nil {
		return nil, err
	}
	if len(c.keys) >= maxCached {
		for k := range c.keys {
			delete(c.keys, k)
			break
		}
	}
	c.keys[peer] = a
	return a, nil
}

// Forget drops the cached key of a peer that is gone.
func (c *Codec) Forget(peer wire.Key) {
	c.mu.Lock()
	delete(c.keys, peer)
	c.mu.Unlock()
}

// Seal encrypts msg to peer.
func (c *Codec) Seal(peer wire.Key, msg Message) ([]byte, error) {
	a, err := c.aead(peer)
	if err != nil {
		return nil, err
	}
	return seal(a, c.pub, msg), nil
}

// Open authenticates and decrypts pkt; see the package-level Open.
func (c *Codec) Open(pkt []byte, isPeer func(wire.Key) bool) (wire.Key, Message, error) {
	sender, err := checkHeader(pkt, c.pub, isPeer)
	if err != nil {
		return sender, nil, err
	}
	a, err := c.aead(sender)
	if err != nil {
		return sender, nil, err
	}
	msg, err := open(a, pkt)
	return sender, msg, err
}
