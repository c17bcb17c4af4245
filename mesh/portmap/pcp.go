package portmap

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// PCP (RFC 6887) messages: a 24-byte header, then the opcode's fields, then options
// (weft sends none and ignores those in responses). Addresses are 16 bytes, IPv4 ones
// IPv4-mapped.
const (
	pcpVersion    = 2
	pcpOpAnnounce = 0
	pcpOpMap      = 1
	pcpReply      = 0x80
	pcpHeaderLen  = 24
	pcpMapLen     = pcpHeaderLen + 36
	pcpMaxLen     = 1100 // RFC 6887 §7: no PCP message is longer
	protoUDP      = 17
)

// PCP result codes (RFC 6887 §7.4).
const (
	pcpUnsuppVersion = 1
)

var pcpResults = map[uint8]string{
	pcpUnsuppVersion: "UNSUPP_VERSION",
	2:                "NOT_AUTHORIZED",
	3:                "MALFORMED_REQUEST",
	4:                "UNSUPP_OPCODE",
	5:                "UNSUPP_OPTION",
	6:                "MALFORMED_OPTION",
	7:                "NETWORK_FAILURE",
	8:                "NO_RESOURCES",
	9:                "UNSUPP_PROTOCOL",
	10:               "USER_EX_QUOTA",
	11:               "CANNOT_PROVIDE_EXTERNAL",
	12:               "ADDRESS_MISMATCH",
	13:               "EXCESSIVE_REMOTE_PEERS",
}

// nonce identifies one mapping to the PCP server: renewals and the deletion repeat it,
// and a response is taken only with it.
type nonce [12]byte

func pcpHeader(b []byte, op byte, lifetime uint32, client netip.Addr) {
	b[0], b[1] = pcpVersion, op
	binary.BigEndian.PutUint32(b[4:8], lifetime)
	a := client.As16()
	copy(b[8:24], a[:])
}

// pcpAnnounceRequest asks the server for nothing but a response: its epoch, or an error
// saying it speaks no PCP.
func pcpAnnounceRequest(client netip.Addr) []byte {
	b := make([]byte, pcpHeaderLen)
	pcpHeader(b, pcpOpAnnounce, 0, client)
	return b
}

// pcpMapRequest asks client's server to map UDP port internal of client (the address the
// request is sent from) for lifetime seconds (0 deletes the mapping), preferably to
// suggested (a zero port or address: any).
func pcpMapRequest(client netip.Addr, n nonce, internal uint16, suggested netip.AddrPort, lifetime uint32) []byte {
	b := make([]byte, pcpMapLen)
	pcpHeader(b, pcpOpMap, lifetime, client)
	m := b[pcpHeaderLen:]
	copy(m[0:12], n[:])
	m[12] = protoUDP
	binary.BigEndian.PutUint16(m[16:18], internal)
	binary.BigEndian.PutUint16(m[18:20], suggested.Port())
	ip := suggested.Addr()
	if !ip.IsValid() {
		ip = netip.IPv4Unspecified() // "no preference" for an IPv4 mapping: ::ffff:0.0.0.0
	}
	a := ip.As16()
	copy(m[20:36], a[:])
	return b
}

// pcpResponse is a decoded PCP response.
type pcpResponse struct {
	op       byte
	result   uint8
	lifetime uint32 // seconds: granted, or for an error how long it stands
	epoch    uint32
	// MAP responses only.
	nonce    nonce
	proto    uint8
	internal uint16
	external netip.AddrPort
}

// parsePCP decodes a PCP response. Too short, too long, misaligned or truncated messages,
// requests and versions other than 2 are errors; so is a non-zero result code, returned
// with the header (for its epoch and lifetime).
func parsePCP(b []byte) (pcpResponse, error) {
	var r pcpResponse
	switch {
	case len(b) < pcpHeaderLen:
		return r, fmt.Errorf("%w: PCP response of %d bytes is too short", errMalformed, len(b))
	case len(b) > pcpMaxLen || len(b)%4 != 0:
		return r, fmt.Errorf("%w: PCP response of %d bytes: want a multiple of 4 up to %d", errMalformed, len(b), pcpMaxLen)
	case b[0] != pcpVersion:
		return r, fmt.Errorf("%w: PCP response has version %d", errMalformed, b[0])
	case b[1]&pcpReply == 0:
		return r, fmt.Errorf("%w: PCP message with opcode %d is a request, not a response", errMalformed, b[1])
	}
	r.op = b[1] &^ pcpReply
	r.result = b[3]
	r.lifetime = binary.BigEndian.Uint32(b[4:8])
	r.epoch = binary.BigEndian.Uint32(b[8:12])
	if r.result != 0 {
		return r, fmt.Errorf("PCP: %s", resultText(pcpResults, r.result))
	}
	switch r.op {
	case pcpOpAnnounce:
	case pcpOpMap:
		if len(b) < pcpMapLen {
			return r, fmt.Errorf("%w: PCP MAP response of %d bytes, want at least %d", errMalformed, len(b), pcpMapLen)
		}
		m := b[pcpHeaderLen:]
		r.nonce = nonce(m[0:12])
		r.proto = m[12]
		r.internal = binary.BigEndian.Uint16(m[16:18])
		ip := netip.AddrFrom16([16]byte(m[20:36])).Unmap()
		r.external = netip.AddrPortFrom(ip, binary.BigEndian.Uint16(m[18:20]))
	default:
		return r, fmt.Errorf("%w: PCP response to unknown opcode %d", errMalformed, r.op)
	}
	return r, nil
}
