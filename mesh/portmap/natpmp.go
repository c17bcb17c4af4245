package portmap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// errMalformed marks a datagram that is no well-formed response: it is ignored (a real
// answer may still come) and named only if none does.
var errMalformed = errors.New("malformed response")

// NAT-PMP (RFC 6886) messages. Requests go to the gateway's port 5351; every response
// starts with version 0, the request's opcode plus 128, a result code and the seconds
// since the gateway's epoch (its last boot or loss of mapping state).
const (
	pmpVersion   = 0
	pmpOpAddr    = 0 // external address request
	pmpOpMapUDP  = 1
	pmpReply     = 0x80
	pmpAddrLen   = 12 // external address response
	pmpMapLen    = 16 // mapping response
	pmpErrMinLen = 8  // any response carries at least version, opcode, result and epoch
)

// NAT-PMP result codes (RFC 6886 §3.5).
var pmpResults = map[uint16]string{
	1: "unsupported version",
	2: "not authorized or refused",
	3: "network failure (the gateway has no external address)",
	4: "out of resources",
	5: "unsupported opcode",
}

// pmpAddrRequest asks for the gateway's external address.
func pmpAddrRequest() []byte { return []byte{pmpVersion, pmpOpAddr} }

// pmpMapRequest asks to map a UDP port of the sending host: internal is the host's port,
// suggested the external port wanted (0: any), lifetime in seconds (0 deletes the mapping;
// then suggested must be 0 too).
func pmpMapRequest(internal, suggested uint16, lifetime uint32) []byte {
	b := make([]byte, 12)
	b[0], b[1] = pmpVersion, pmpOpMapUDP
	binary.BigEndian.PutUint16(b[4:6], internal)
	binary.BigEndian.PutUint16(b[6:8], suggested)
	binary.BigEndian.PutUint32(b[8:12], lifetime)
	return b
}

// pmpResponse is a decoded NAT-PMP response.
type pmpResponse struct {
	op       byte   // the request's opcode
	result   uint16 // 0: success
	epoch    uint32 // seconds since the gateway's epoch
	external netip.Addr
	internal uint16 // mapping responses: the internal port
	mapped   uint16 // mapping responses: the external port granted
	lifetime uint32 // mapping responses: seconds granted
}

// parsePMP decodes a NAT-PMP response, strictly: anything but a well-formed response of
// the exact size for its opcode is an error. A response with a non-zero result code is
// returned with an error that names it (its epoch is still valid).
func parsePMP(b []byte) (pmpResponse, error) {
	var r pmpResponse
	if len(b) < pmpErrMinLen {
		return r, fmt.Errorf("%w: NAT-PMP response of %d bytes is too short", errMalformed, len(b))
	}
	if b[0] != pmpVersion {
		return r, fmt.Errorf("%w: NAT-PMP response has version %d", errMalformed, b[0])
	}
	if b[1]&pmpReply == 0 {
		return r, fmt.Errorf("%w: NAT-PMP message with opcode %d is a request, not a response", errMalformed, b[1])
	}
	r.op = b[1] &^ pmpReply
	r.result = binary.BigEndian.Uint16(b[2:4])
	r.epoch = binary.BigEndian.Uint32(b[4:8])
	if r.result != 0 {
		return r, fmt.Errorf("NAT-PMP: %s", resultText(pmpResults, r.result))
	}
	switch r.op {
	case pmpOpAddr:
		if len(b) != pmpAddrLen {
			return r, fmt.Errorf("%w: NAT-PMP address response of %d bytes, want %d", errMalformed, len(b), pmpAddrLen)
		}
		r.external = netip.AddrFrom4([4]byte(b[8:12]))
	case pmpOpMapUDP:
		if len(b) != pmpMapLen {
			return r, fmt.Errorf("%w: NAT-PMP mapping response of %d bytes, want %d", errMalformed, len(b), pmpMapLen)
		}
		r.internal = binary.BigEndian.Uint16(b[8:10])
		r.mapped = binary.BigEndian.Uint16(b[10:12])
		r.lifetime = binary.BigEndian.Uint32(b[12:16])
	default:
		return r, fmt.Errorf("%w: NAT-PMP response to unknown opcode %d", errMalformed, r.op)
	}
	return r, nil
}

func resultText[T uint8 | uint16](names map[T]string, code T) string {
	if s, ok := names[code]; ok {
		return fmt.Sprintf("result %d (%s)", code, s)
	}
	return fmt.Sprintf("result %d", code)
}
