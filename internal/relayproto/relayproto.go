// Package relayproto is the weft relay's wire format: handshake messages, data frames and
// the MACs that bind them to the keys of both ends (see docs/RELAY.md). No I/O.
package relayproto

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/weftmesh/weft/wire"
)

// Version is the relay protocol version carried in every handshake message.
//
// Changelog:
//
//	1 (2026-12-01): hello/challenge/auth/welcome/refused, data, forward, ping/pong over
//	  UDP and over TLS (HTTP Upgrade: weft-relay, 2-byte length-prefixed frames).
const Version = 1

// Message types: the first byte of every message. All have the high bit set, so they
// never look like a WireGuard message (whose first byte is 1–4) on a shared socket.
const (
	TypeHello     = 0xA1 // client → relay: Hello, padded to HelloSize
	TypeChallenge = 0xA2 // relay → client: Challenge
	TypeAuth      = 0xA3 // client → relay: Auth
	TypeWelcome   = 0xA4 // relay → client: Welcome
	TypeRefused   = 0xA5 // relay → client: Refused
	TypeData      = 0xA6 // client → relay: [type][token][dst key][payload]
	TypeForward   = 0xA7 // relay → client: [type][src key][payload]
	TypePing      = 0xA8 // client → relay: [type][token][echo]
	TypePong      = 0xA9 // relay → client: [type][echo]
)

// Sizes of the fixed-size messages and headers.
const (
	NonceSize     = 16 // client nonce
	CookieSize    = 32 // relay nonce
	TokenSize     = 8  // session token
	MACSize       = sha256.Size
	HelloSize     = 64 // padded: never smaller than a Challenge, so a reply cannot amplify
	ChallengeSize = 2 + NonceSize + CookieSize
	AuthSize      = 2 + 32 + NonceSize + CookieSize + MACSize
	WelcomeSize   = 2 + NonceSize + TokenSize + 2 + 18 + MACSize
	RefusedSize   = 2 + NonceSize + 1 + MACSize
	DataHeader    = 1 + TokenSize + 32
	ForwardHeader = 1 + 32
	PingSize      = 1 + TokenSize + 8
	PongSize      = 1 + 8

	// MaxFrame is the largest message on either transport (the TLS transport's length
	// prefix is 16 bits).
	MaxFrame = 1<<16 - 1
	// MaxPayload is the largest payload a Data frame can carry over TLS.
	MaxPayload = MaxFrame - DataHeader
	// MaxUDPPayload is the largest payload a Data frame can carry over UDP (IPv4).
	MaxUDPPayload = MaxFrame - 20 - 8 - DataHeader
)

// Refusal reasons.
const (
	RefusedFull = 1 // the relay has its maximum number of clients
)

// Transport tags bind a MAC to the transport it was made for.
const (
	TransportUDP = 'U'
	TransportTLS = 'T'
)

// BindingSize is the length of the TLS channel binding (exported keying material).
const BindingSize = 32

// BindingLabel is the TLS exporter label both ends use for the channel binding.
const BindingLabel = "EXPORTER-weft-relay-v1"

// Token is a session token: it lets the relay accept a UDP frame without a MAC, from the
// address it was issued to only.
type Token [TokenSize]byte

var errMalformed = errors.New("malformed relay message")

// Hello opens a handshake.
type Hello struct {
	Client wire.Key
	Nonce  [NonceSize]byte
}

// AppendHello appends h, padded with zeros to HelloSize.
func AppendHello(b []byte, h Hello) []byte {
	b = append(b, TypeHello, Version)
	b = append(b, h.Client[:]...)
	b = append(b, h.Nonce[:]...)
	var pad [HelloSize - 2 - 32 - NonceSize]byte
	return append(b, pad[:]...)
}

// ParseHello accepts only a well-formed hello: exact size, this version, zero padding.
func ParseHello(p []byte) (Hello, error) {
	var h Hello
	if len(p) != HelloSize || p[0] != TypeHello || p[1] != Version {
		return h, errMalformed
	}
	for _, c := range p[2+32+NonceSize:] {
		if c != 0 {
			return h, errMalformed
		}
	}
	copy(h.Client[:], p[2:34])
	copy(h.Nonce[:], p[34:34+NonceSize])
	return h, nil
}

// Challenge answers a hello with the relay's nonce.
type Challenge struct {
	ClientNonce [NonceSize]byte
	Cookie      [CookieSize]byte
}

func AppendChallenge(b []byte, c Challenge) []byte {
	b = append(b, TypeChallenge, Version)
	b = append(b, c.ClientNonce[:]...)
	return append(b, c.Cookie[:]...)
}

func ParseChallenge(p []byte) (Challenge, error) {
	var c Challenge
	if len(p) != ChallengeSize || p[0] != TypeChallenge || p[1] != Version {
		return c, errMalformed
	}
	copy(c.ClientNonce[:], p[2:])
	copy(c.Cookie[:], p[2+NonceSize:])
	return c, nil
}

// Auth proves the client holds the private key of Client.
type Auth struct {
	Client      wire.Key
	ClientNonce [NonceSize]byte
	Cookie      [CookieSize]byte
	MAC         [MACSize]byte
}

func AppendAuth(b []byte, a Auth) []byte {
	b = append(b, TypeAuth, Version)
	b = append(b, a.Client[:]...)
	b = append(b, a.ClientNonce[:]...)
	b = append(b, a.Cookie[:]...)
	return append(b, a.MAC[:]...)
}

func ParseAuth(p []byte) (Auth, error) {
	var a Auth
	if len(p) != AuthSize || p[0] != TypeAuth || p[1] != Version {
		return a, errMalformed
	}
	p = p[2:]
	p = p[copy(a.Client[:], p):]
	p = p[copy(a.ClientNonce[:], p):]
	p = p[copy(a.Cookie[:], p):]
	copy(a.MAC[:], p)
	return a, nil
}

// Welcome accepts a client and proves the relay holds its private key.
type Welcome struct {
	ClientNonce [NonceSize]byte
	Token       Token
	LeaseSecs   uint16         // how long a UDP binding lives without traffic
	Observed    netip.AddrPort // the client's address as the relay sees it
	MAC         [MACSize]byte
}

func AppendWelcome(b []byte, w Welcome) []byte {
	b = append(b, TypeWelcome, Version)
	b = append(b, w.ClientNonce[:]...)
	b = append(b, w.Token[:]...)
	b = binary.BigEndian.AppendUint16(b, w.LeaseSecs)
	b = appendAddrPort(b, w.Observed)
	return append(b, w.MAC[:]...)
}

func ParseWelcome(p []byte) (Welcome, error) {
	var w Welcome
	if len(p) != WelcomeSize || p[0] != TypeWelcome || p[1] != Version {
		return w, errMalformed
	}
	p = p[2:]
	p = p[copy(w.ClientNonce[:], p):]
	p = p[copy(w.Token[:], p):]
	w.LeaseSecs = binary.BigEndian.Uint16(p)
	w.Observed = parseAddrPort(p[2:20])
	copy(w.MAC[:], p[20:])
	return w, nil
}

// Refused turns a client away after it proved its key, so it can report why.
type Refused struct {
	ClientNonce [NonceSize]byte
	Reason      byte
	MAC         [MACSize]byte
}

func AppendRefused(b []byte, r Refused) []byte {
	b = append(b, TypeRefused, Version)
	b = append(b, r.ClientNonce[:]...)
	b = append(b, r.Reason)
	return append(b, r.MAC[:]...)
}

func ParseRefused(p []byte) (Refused, error) {
	var r Refused
	if len(p) != RefusedSize || p[0] != TypeRefused || p[1] != Version {
		return r, errMalformed
	}
	copy(r.ClientNonce[:], p[2:])
	r.Reason = p[2+NonceSize]
	copy(r.MAC[:], p[3+NonceSize:])
	return r, nil
}

// appendAddrPort writes a as 16 bytes of IPv6 (IPv4 mapped) and a 2-byte port.
func appendAddrPort(b []byte, a netip.AddrPort) []byte {
	ip := a.Addr().As16()
	b = append(b, ip[:]...)
	return binary.BigEndian.AppendUint16(b, a.Port())
}

func parseAddrPort(p []byte) netip.AddrPort {
	ip := netip.AddrFrom16([16]byte(p[:16])).Unmap()
	return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(p[16:18]))
}

// PutDataHeader writes a Data header into b[:DataHeader]; the payload follows it.
func PutDataHeader(b []byte, token Token, dst wire.Key) {
	_ = b[DataHeader-1]
	b[0] = TypeData
	copy(b[1:], token[:])
	copy(b[1+TokenSize:], dst[:])
}

// ParseData splits a Data frame. It does not check the token.
func ParseData(p []byte) (token []byte, dst []byte, payload []byte, ok bool) {
	if len(p) < DataHeader || p[0] != TypeData {
		return nil, nil, nil, false
	}
	return p[1 : 1+TokenSize], p[1+TokenSize : DataHeader], p[DataHeader:], true
}

// DataToForward rewrites a Data frame in place into the Forward frame the relay sends on,
// with src as the sender, and returns it: a sub-slice of p, DataHeader−ForwardHeader bytes
// shorter, so forwarding never copies the payload.
func DataToForward(p []byte, src wire.Key) []byte {
	f := p[DataHeader-ForwardHeader:]
	f[0] = TypeForward
	copy(f[1:], src[:])
	return f
}

// PutForwardHeader writes a Forward header into b[:ForwardHeader].
func PutForwardHeader(b []byte, src wire.Key) {
	_ = b[ForwardHeader-1]
	b[0] = TypeForward
	copy(b[1:], src[:])
}

// ParseForward splits a Forward frame.
func ParseForward(p []byte) (src wire.Key, payload []byte, ok bool) {
	if len(p) < ForwardHeader || p[0] != TypeForward {
		return src, nil, false
	}
	copy(src[:], p[1:ForwardHeader])
	return src, p[ForwardHeader:], true
}

// AppendPing appends a keepalive that carries the session token and an echo value.
func AppendPing(b []byte, token Token, echo uint64) []byte {
	b = append(b, TypePing)
	b = append(b, token[:]...)
	return binary.BigEndian.AppendUint64(b, echo)
}

// ParsePing splits a Ping. It does not check the token.
func ParsePing(p []byte) (token []byte, echo uint64, ok bool) {
	if len(p) != PingSize || p[0] != TypePing {
		return nil, 0, false
	}
	return p[1 : 1+TokenSize], binary.BigEndian.Uint64(p[1+TokenSize:]), true
}

func AppendPong(b []byte, echo uint64) []byte {
	b = append(b, TypePong)
	return binary.BigEndian.AppendUint64(b, echo)
}

func ParsePong(p []byte) (echo uint64, ok bool) {
	if len(p) != PongSize || p[0] != TypePong {
		return 0, false
	}
	return binary.BigEndian.Uint64(p[1:]), true
}

// The TLS transport: the client sends "GET Path" with "Upgrade: UpgradeToken" and
// "Connection: Upgrade"; after "101 Switching Protocols" both sides send frames, each
// prefixed by its length as 2 bytes, big-endian.
const (
	Path         = "/relay"
	UpgradeToken = "weft-relay"
)
