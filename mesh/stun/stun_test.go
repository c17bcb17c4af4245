package stun

import (
	"bytes"
	"net/netip"
	"testing"
)

// RFC 5769 §2.2 and §2.3: sample binding responses (with SOFTWARE, MESSAGE-INTEGRITY and
// FINGERPRINT) and their transaction ID.
var (
	rfcTx     = TxID{0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae}
	rfcIPv4Rs = []byte{
		0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
		0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20,
		0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
		0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7,
		0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
	}
	rfcIPv6Rs = []byte{
		0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
		0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20,
		0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
		0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41,
		0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c,
	}
)

func TestRFC5769Responses(t *testing.T) {
	for _, c := range []struct {
		pkt  []byte
		want string
	}{
		{rfcIPv4Rs, "192.0.2.1:32853"},
		{rfcIPv6Rs, "[2001:db8:1234:5678:11:2233:4455:6677]:32853"},
	} {
		if !IsSTUN(c.pkt) {
			t.Fatalf("IsSTUN(%s vector) = false", c.want)
		}
		tx, addr, err := ParseResponse(c.pkt)
		if err != nil || tx != rfcTx || addr != netip.MustParseAddrPort(c.want) {
			t.Errorf("got %x %v %v, want %x %s", tx, addr, err, rfcTx, c.want)
		}
		// Our own response for the same transaction and address decodes the same way.
		own := Response(rfcTx, addr)
		if tx2, addr2, err := ParseResponse(own); err != nil || tx2 != rfcTx || addr2 != addr {
			t.Errorf("own response: %x %v %v", tx2, addr2, err)
		}
		// The XOR-MAPPED-ADDRESS bytes match the RFC's.
		if !bytes.Contains(c.pkt, own[headerLen:len(own)-fingerprintAttrLen]) {
			t.Errorf("own XOR-MAPPED-ADDRESS %x is not the RFC's", own[headerLen:len(own)-fingerprintAttrLen])
		}
	}
}

func TestRequest(t *testing.T) {
	tx1, req := Request()
	tx2, _ := Request()
	if tx1 == tx2 {
		t.Fatal("two requests share a transaction ID")
	}
	if !IsSTUN(req) {
		t.Fatal("request does not look like STUN")
	}
	got, err := ParseRequest(req)
	if err != nil || got != tx1 {
		t.Fatalf("ParseRequest = %x, %v; want %x", got, err, tx1)
	}
	if _, _, err := ParseResponse(req); err == nil {
		t.Fatal("a request parsed as a response")
	}
	// A bare header (no attributes), as many clients send, is a valid request too.
	bare := req[:headerLen:headerLen]
	bare = append([]byte(nil), bare...)
	bare[2], bare[3] = 0, 0
	if got, err := ParseRequest(bare); err != nil || got != tx1 {
		t.Fatalf("bare request: %x, %v", got, err)
	}
}

func TestResponseRoundTrip(t *testing.T) {
	if _, addr, err := ParseResponse(Response(TxID{}, netip.AddrPort{})); err != nil || addr != netip.MustParseAddrPort("0.0.0.0:0") {
		t.Errorf("response for no address: %v %v", addr, err)
	}
	for _, s := range []string{"203.0.113.9:1", "0.0.0.0:0", "[::ffff:198.51.100.1]:65535", "[2001:db8::5]:4242"} {
		ap := netip.MustParseAddrPort(s)
		tx, _ := Request()
		got, addr, err := ParseResponse(Response(tx, ap))
		want := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if err != nil || got != tx || addr != want {
			t.Errorf("%s: got %x %v %v", s, got, addr, err)
		}
	}
}

func TestBad(t *testing.T) {
	tx, _ := Request()
	good := Response(tx, netip.MustParseAddrPort("203.0.113.9:7"))
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for name, pkt := range map[string][]byte{
		"empty":           nil,
		"wireguard":       {1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20},
		"short":           good[:19],
		"bad cookie":      mut(func(b []byte) []byte { b[4] ^= 1; return b }),
		"bad length":      mut(func(b []byte) []byte { b[3] += 4; return b }),
		"truncated":       good[:len(good)-4],
		"fingerprint":     mut(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }),
		"altered address": mut(func(b []byte) []byte { b[headerLen+9] ^= 1; return b }),
		"error response":  mut(func(b []byte) []byte { b[1] = 0x11; return b }),
		"no address": func() []byte {
			b := appendHeader(nil, typeBindingSuccess, tx)
			return appendFingerprint(b)
		}(),
		"bad family": mut(func(b []byte) []byte { b[headerLen+5] = 3; return b }),
	} {
		if _, addr, err := ParseResponse(pkt); err == nil {
			t.Errorf("%s: accepted, address %v", name, addr)
		}
	}
}

func TestIsSTUN(t *testing.T) {
	_, req := Request()
	if !IsSTUN(req) {
		t.Error("request not recognised")
	}
	for name, pkt := range map[string][]byte{
		"wireguard initiation": append([]byte{1, 0, 0, 0}, make([]byte, 144)...),
		"disco":                append([]byte("\xF7wft"), make([]byte, 80)...),
		"other STUN method":    append([]byte{0x00, 0x03, 0, 0, 0x21, 0x12, 0xa4, 0x42}, make([]byte, 12)...),
	} {
		if IsSTUN(pkt) {
			t.Errorf("%s taken for STUN", name)
		}
	}
}

func FuzzParseResponse(f *testing.F) {
	f.Add(rfcIPv4Rs)
	f.Add(rfcIPv6Rs)
	_, req := Request()
	f.Add(req)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		tx, addr, err := ParseResponse(pkt)
		if err != nil {
			return
		}
		// Whatever parses re-encodes to something that parses the same.
		tx2, addr2, err := ParseResponse(Response(tx, addr))
		if err != nil || tx2 != tx || addr2 != netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port()) {
			t.Fatalf("re-encoded %x %v: got %x %v %v", tx, addr, tx2, addr2, err)
		}
	})
}

func FuzzParseRequest(f *testing.F) {
	_, req := Request()
	f.Add(req)
	f.Add(rfcIPv4Rs)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if _, err := ParseRequest(pkt); err == nil && !IsSTUN(pkt) {
			t.Fatal("parsed a request IsSTUN rejects")
		}
	})
}
