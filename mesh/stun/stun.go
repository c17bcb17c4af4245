// Package stun encodes and decodes RFC 5389 binding requests and responses: the few bytes a
// device sends from its WireGuard socket to learn its public mapping. No I/O.
package stun

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"
)

// Message types this package speaks (RFC 5389 §6: class and method bits).
const (
	typeBindingRequest  = 0x0001
	typeBindingSuccess  = 0x0101
	typeBindingError    = 0x0111
	magicCookie         = 0x2112A442
	headerLen           = 20
	attrXORMappedAddr   = 0x0020
	attrXORMappedAddrV0 = 0x8020 // the pre-RFC 5389 code some servers still send
	attrMappedAddr      = 0x0001
	attrFingerprint     = 0x8028
	fingerprintXOR      = 0x5354554e
	fingerprintAttrLen  = 8
)

// TxID is a STUN transaction ID.
type TxID [12]byte

var (
	errNotSTUN     = errors.New("stun: not a STUN message")
	errMalformed   = errors.New("stun: malformed message")
	errFingerprint = errors.New("stun: fingerprint mismatch")
	errNoAddress   = errors.New("stun: response carries no mapped address")
)

// IsSTUN reports whether pkt looks like a binding request, success or error response:
// the cheap test a demultiplexer sharing the socket makes.
func IsSTUN(pkt []byte) bool {
	if len(pkt) < headerLen || pkt[0]&0xC0 != 0 || binary.BigEndian.Uint32(pkt[4:8]) != magicCookie {
		return false
	}
	switch binary.BigEndian.Uint16(pkt[0:2]) {
	case typeBindingRequest, typeBindingSuccess, typeBindingError:
		return true
	}
	return false
}

// Request returns a new binding request with a random transaction ID. It carries a
// FINGERPRINT so that a server sharing its socket with other protocols can tell it apart.
func Request() (TxID, []byte) {
	var tx TxID
	rand.Read(tx[:]) // never fails (crypto/rand panics rather than return an error)
	b := appendHeader(make([]byte, 0, headerLen+fingerprintAttrLen), typeBindingRequest, tx)
	return tx, appendFingerprint(b)
}

// Response returns the binding success response to request tx that tells the client it
// was seen from addr, as XOR-MAPPED-ADDRESS, with a FINGERPRINT.
func Response(tx TxID, addr netip.AddrPort) []byte {
	b := appendHeader(make([]byte, 0, headerLen+4+20+fingerprintAttrLen), typeBindingSuccess, tx)
	ip := addr.Addr().Unmap()
	if !ip.IsValid() {
		ip = netip.IPv4Unspecified()
	}
	family, n := byte(1), 4
	if ip.Is6() {
		family, n = 2, 16
	}
	b = binary.BigEndian.AppendUint16(b, attrXORMappedAddr)
	b = binary.BigEndian.AppendUint16(b, uint16(4+n))
	b = append(b, 0, family)
	b = binary.BigEndian.AppendUint16(b, addr.Port()^uint16(magicCookie>>16))
	key := xorKey(tx)
	raw := ip.As16()
	src := raw[16-n:]
	if n == 4 {
		a4 := ip.As4()
		src = a4[:]
	}
	for i := range n {
		b = append(b, src[i]^key[i])
	}
	setLength(b)
	return appendFingerprint(b)
}

// ParseRequest checks that pkt is a binding request and returns its transaction ID.
func ParseRequest(pkt []byte) (TxID, error) {
	tx, _, err := parse(pkt, typeBindingRequest)
	return tx, err
}

// ParseResponse decodes a binding success response: its transaction ID and the mapped
// address (XOR-MAPPED-ADDRESS, else the legacy MAPPED-ADDRESS).
func ParseResponse(pkt []byte) (TxID, netip.AddrPort, error) {
	tx, attrs, err := parse(pkt, typeBindingSuccess)
	if err != nil {
		return tx, netip.AddrPort{}, err
	}
	var xorAddr, legacyXOR, plain []byte
	for a := attrs; len(a) > 0; {
		typ, val, rest := nextAttr(a)
		switch typ {
		case attrXORMappedAddr:
			xorAddr = val
		case attrXORMappedAddrV0:
			legacyXOR = val
		case attrMappedAddr:
			plain = val
		}
		a = rest
	}
	switch {
	case xorAddr != nil:
		return decodeAddr(tx, xorAddr, true)
	case legacyXOR != nil:
		return decodeAddr(tx, legacyXOR, true)
	case plain != nil:
		return decodeAddr(tx, plain, false)
	}
	return tx, netip.AddrPort{}, errNoAddress
}

func appendHeader(b []byte, typ uint16, tx TxID) []byte {
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint16(b, 0) // length, set later
	b = binary.BigEndian.AppendUint32(b, magicCookie)
	return append(b, tx[:]...)
}

func setLength(b []byte) { binary.BigEndian.PutUint16(b[2:4], uint16(len(b)-headerLen)) }

// appendFingerprint adds FINGERPRINT: the CRC-32 of everything before it, with the header
// length already counting the fingerprint attribute (RFC 5389 §15.5).
func appendFingerprint(b []byte) []byte {
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)-headerLen+fingerprintAttrLen))
	crc := crc32.ChecksumIEEE(b) ^ fingerprintXOR
	b = binary.BigEndian.AppendUint16(b, attrFingerprint)
	b = binary.BigEndian.AppendUint16(b, 4)
	return binary.BigEndian.AppendUint32(b, crc)
}

// parse checks the header and the attribute framing of a message of type want, and the
// fingerprint if there is one, and returns the transaction ID and the attributes.
func parse(pkt []byte, want uint16) (TxID, []byte, error) {
	var tx TxID
	if !IsSTUN(pkt) {
		return tx, nil, errNotSTUN
	}
	copy(tx[:], pkt[8:headerLen])
	if typ := binary.BigEndian.Uint16(pkt[0:2]); typ != want {
		return tx, nil, fmt.Errorf("%w: type %#04x, want %#04x", errMalformed, typ, want)
	}
	n := int(binary.BigEndian.Uint16(pkt[2:4]))
	if n%4 != 0 || headerLen+n != len(pkt) {
		return tx, nil, fmt.Errorf("%w: length %d in a %d-byte packet", errMalformed, n, len(pkt))
	}
	attrs := pkt[headerLen:]
	for a := attrs; len(a) > 0; {
		if len(a) < 4 {
			return tx, nil, fmt.Errorf("%w: truncated attribute", errMalformed)
		}
		typ, l := binary.BigEndian.Uint16(a[0:2]), int(binary.BigEndian.Uint16(a[2:4]))
		padded := 4 + (l+3)&^3
		if padded > len(a) {
			return tx, nil, fmt.Errorf("%w: attribute %#04x overruns the message", errMalformed, typ)
		}
		if typ == attrFingerprint {
			// FINGERPRINT must be the last attribute.
			if l != 4 || padded != len(a) {
				return tx, nil, fmt.Errorf("%w: misplaced fingerprint", errMalformed)
			}
			at := len(pkt) - len(a)
			if crc32.ChecksumIEEE(pkt[:at])^fingerprintXOR != binary.BigEndian.Uint32(a[4:8]) {
				return tx, nil, errFingerprint
			}
		}
		a = a[padded:]
	}
	return tx, attrs, nil
}

// nextAttr splits the first attribute off attrs, which parse has already checked.
func nextAttr(attrs []byte) (typ uint16, val, rest []byte) {
	typ, l := binary.BigEndian.Uint16(attrs[0:2]), int(binary.BigEndian.Uint16(attrs[2:4]))
	return typ, attrs[4 : 4+l], attrs[4+(l+3)&^3:]
}

func decodeAddr(tx TxID, v []byte, xored bool) (TxID, netip.AddrPort, error) {
	if len(v) < 4 {
		return tx, netip.AddrPort{}, fmt.Errorf("%w: short address attribute", errMalformed)
	}
	n := 0
	switch v[1] {
	case 1:
		n = 4
	case 2:
		n = 16
	default:
		return tx, netip.AddrPort{}, fmt.Errorf("%w: address family %d", errMalformed, v[1])
	}
	if len(v) != 4+n {
		return tx, netip.AddrPort{}, fmt.Errorf("%w: address attribute of %d bytes", errMalformed, len(v))
	}
	port := binary.BigEndian.Uint16(v[2:4])
	var raw [16]byte
	copy(raw[:], v[4:])
	if xored {
		port ^= uint16(magicCookie >> 16)
		key := xorKey(tx)
		for i := range n {
			raw[i] ^= key[i]
		}
	}
	var ip netip.Addr
	if n == 4 {
		ip = netip.AddrFrom4([4]byte(raw[:4]))
	} else {
		ip = netip.AddrFrom16(raw)
	}
	return tx, netip.AddrPortFrom(ip, port), nil
}

// xorKey is what XOR-MAPPED-ADDRESS XORs the address with: the magic cookie, then (for
// IPv6) the transaction ID.
func xorKey(tx TxID) [16]byte {
	var k [16]byte
	binary.BigEndian.PutUint32(k[:4], magicCookie)
	copy(k[4:], tx[:])
	return k
}
