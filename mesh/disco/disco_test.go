package disco

import (
	"bytes"
	"net/netip"
	"reflect"
	"testing"

	"github.com/weftmesh/weft/wire"
)

func newKey(t testing.TB) wire.Key {
	t.Helper()
	k, err := wire.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func only(k wire.Key) func(wire.Key) bool { return func(x wire.Key) bool { return x == k } }

func TestRoundTrip(t *testing.T) {
	a, b := newKey(t), newKey(t)
	msgs := []Message{
		&Ping{TxID: NewTxID()},
		&Pong{TxID: NewTxID(), Src: netip.MustParseAddrPort("203.0.113.7:41641")},
		&Pong{TxID: NewTxID(), Src: netip.MustParseAddrPort("[2001:db8::1]:51820")},
		&Pong{TxID: NewTxID()}, // through the relay: no observed source
		&CallMeMaybe{Endpoints: []netip.AddrPort{netip.MustParseAddrPort("192.168.1.10:51820"), netip.MustParseAddrPort("198.51.100.2:1")}},
		&CallMeMaybe{},
		&CallMeMaybe{Endpoints: []netip.AddrPort{netip.MustParseAddrPort("192.168.1.10:51820")},
			Opened: []netip.AddrPort{netip.MustParseAddrPort("203.0.113.9:51820"), netip.MustParseAddrPort("[2001:db8::2]:7")}},
		&CallMeMaybe{Opened: []netip.AddrPort{netip.MustParseAddrPort("203.0.113.9:51820")}},
		&Spray{Addr: netip.MustParseAddr("203.0.113.9"), Ports: 256},
		&Spray{Addr: netip.MustParseAddr("2001:db8::2"), Ports: 1},
	}
	ca, cb := NewCodec(a), NewCodec(b)
	for _, m := range msgs {
		// Package functions and the caching codec interoperate both ways.
		pkt, err := Seal(a, b.Public(), m)
		if err != nil {
			t.Fatal(err)
		}
		if !Looks(pkt) {
			t.Fatalf("%T: sealed packet does not look like disco", m)
		}
		sender, got, err := cb.Open(pkt, only(a.Public()))
		if err != nil {
			t.Fatalf("%T: open: %v", m, err)
		}
		if sender != a.Public() || !reflect.DeepEqual(got, m) {
			t.Fatalf("%T: got %v from %v, want %v from %v", m, got, sender, m, a.Public())
		}
		pkt, err = ca.Seal(b.Public(), m)
		if err != nil {
			t.Fatal(err)
		}
		if _, got, err = Open(b, pkt, only(a.Public())); err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("%T: codec-sealed packet: %v, %v", m, got, err)
		}
	}
}

func TestNoncesDiffer(t *testing.T) {
	a, b := newKey(t), newKey(t)
	m := &Ping{TxID: TxID{1}}
	p1, _ := Seal(a, b.Public(), m)
	p2, _ := Seal(a, b.Public(), m)
	if bytes.Equal(p1, p2) {
		t.Fatal("two seals of the same message are identical: nonce reused")
	}
}

func TestTamper(t *testing.T) {
	a, b := newKey(t), newKey(t)
	pkt, err := Seal(a, b.Public(), &Pong{TxID: NewTxID(), Src: netip.MustParseAddrPort("203.0.113.7:4")})
	if err != nil {
		t.Fatal(err)
	}
	// Every byte after the magic matters: the sender (key), nonce and header are
	// authenticated, and so is the ciphertext and tag.
	for i := len(Magic); i < len(pkt); i++ {
		bad := bytes.Clone(pkt)
		bad[i] ^= 0x40
		if _, _, err := Open(b, bad, func(wire.Key) bool { return true }); err == nil {
			t.Fatalf("flipping byte %d was not detected", i)
		}
	}
	if _, _, err := Open(b, pkt[:len(pkt)-1], only(a.Public())); err == nil {
		t.Fatal("truncated packet accepted")
	}
}

func TestWrongKey(t *testing.T) {
	a, b, c := newKey(t), newKey(t), newKey(t)
	pkt, _ := Seal(a, b.Public(), &Ping{TxID: NewTxID()})
	// c is not the recipient, even though it accepts a as a peer.
	if _, _, err := Open(c, pkt, only(a.Public())); err == nil {
		t.Fatal("packet for b opened with c's key")
	}
}

func TestNonPeer(t *testing.T) {
	a, b := newKey(t), newKey(t)
	pkt, _ := Seal(a, b.Public(), &Ping{TxID: NewTxID()})
	asked := 0
	_, _, err := Open(b, pkt, func(wire.Key) bool { asked++; return false })
	if err != errNotPeer || asked != 1 {
		t.Fatalf("got %v after %d peer checks, want errNotPeer after 1", err, asked)
	}
}

// TestReflection: a device's own packet sent back to it, as is or with the sender
// rewritten to the peer it was for, is refused.
func TestReflection(t *testing.T) {
	a, b := newKey(t), newKey(t)
	pkt, _ := Seal(a, b.Public(), &Ping{TxID: NewTxID()})
	if _, _, err := Open(a, pkt, func(wire.Key) bool { return true }); err == nil {
		t.Fatal("own packet accepted")
	}
	bad := bytes.Clone(pkt)
	pub := b.Public()
	copy(bad[len(Magic):], pub[:])
	if _, _, err := Open(a, bad, only(b.Public())); err == nil {
		t.Fatal("reflected packet with rewritten sender accepted")
	}
}

func TestMalformedPlaintext(t *testing.T) {
	a, b := newKey(t), newKey(t)
	for name, plain := range map[string][]byte{
		"empty":              {},
		"unknown type":       {9, 1, 2},
		"short ping":         append([]byte{typePing}, make([]byte, 11)...),
		"long ping":          append([]byte{typePing}, make([]byte, 13)...),
		"short pong":         append([]byte{typePong}, make([]byte, 29)...),
		"ragged callmemaybe": append([]byte{typeCallMeMaybe}, make([]byte, 19)...),
		"huge callmemaybe":   append([]byte{typeCallMeMaybe}, make([]byte, addrLen*(MaxEndpoints+1))...),
		"opened no count":    {typeCallMeMaybeOpened},
		"opened ragged":      append([]byte{typeCallMeMaybeOpened, 0}, make([]byte, 19)...),
		"opened count past":  append([]byte{typeCallMeMaybeOpened, 2}, make([]byte, addrLen)...),
		"opened huge":        append([]byte{typeCallMeMaybeOpened, 0}, make([]byte, addrLen*(MaxEndpoints+1))...),
		"short spray":        append([]byte{typeSpray}, make([]byte, addrLen+1)...),
		"spray to nowhere":   append([]byte{typeSpray}, make([]byte, addrLen+2)...),
		"spray to loopback":  append(append([]byte{typeSpray}, netip.IPv6Loopback().AsSlice()...), 0, 0, 1, 0),
		"spray with a port":  append(append(append([]byte{typeSpray}, make([]byte, 10)...), 0xff, 0xff, 203, 0, 113, 9), 0, 1, 1, 0),
	} {
		aead, err := newAEAD(a, b.Public())
		if err != nil {
			t.Fatal(err)
		}
		pkt := seal(aead, a.Public(), rawMessage(plain))
		if _, m, err := Open(b, pkt, only(a.Public())); err == nil {
			t.Errorf("%s: accepted as %#v", name, m)
		}
	}
}

// rawMessage seals arbitrary plaintext, for testing the parser behind authentication.
type rawMessage []byte

func (r rawMessage) appendTo(b []byte) []byte { return append(b, r...) }

func TestLowOrderPeerKey(t *testing.T) {
	a := newKey(t)
	if _, err := Seal(a, wire.Key{}, &Ping{}); err == nil {
		t.Fatal("sealing to the all-zero key succeeded")
	}
	c := NewCodec(a)
	if _, err := c.Seal(wire.Key{}, &Ping{}); err == nil {
		t.Fatal("codec sealed to the all-zero key")
	}
}

func TestCodecCacheBounded(t *testing.T) {
	c := NewCodec(newKey(t))
	for range maxCached + 10 {
		if _, err := c.Seal(newKey(t).Public(), &Ping{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.keys); n > maxCached {
		t.Fatalf("cache holds %d keys, bound %d", n, maxCached)
	}
}

func FuzzOpen(f *testing.F) {
	a, b := newKey(f), newKey(f)
	for _, m := range []Message{&Ping{}, &Pong{Src: netip.MustParseAddrPort("1.2.3.4:5")}, &CallMeMaybe{Endpoints: []netip.AddrPort{netip.MustParseAddrPort("1.2.3.4:5")}}} {
		pkt, _ := Seal(a, b.Public(), m)
		f.Add(pkt)
	}
	f.Add([]byte(Magic))
	c := NewCodec(b)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		sender, m, err := c.Open(pkt, func(wire.Key) bool { return true })
		if err == nil {
			if sender != a.Public() {
				t.Fatalf("authenticated a packet from %v, which never sealed one", sender)
			}
			if m == nil {
				t.Fatal("no error and no message")
			}
		}
	})
}
