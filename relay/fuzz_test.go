package relay

import (
	"context"
	"net/netip"
	"testing"

	"github.com/weftmesh/weft/internal/relayproto"
	"github.com/weftmesh/weft/internal/udpbatch"
	"github.com/weftmesh/weft/wire"
)

// FuzzRelayPacket feeds hostile datagrams (optionally as a GRO run) to the UDP frame
// handler, from a stranger and from a bound client, and checks the relay's promises:
// no panic, nothing forwarded for a stranger, and no reply to anyone larger than what
// they sent.
func FuzzRelayPacket(f *testing.F) {
	priv := newKey(f)
	s, err := New(Config{PrivateKey: priv})
	if err != nil {
		f.Fatal(err)
	}
	uc, err := ListenUDP(context.Background(), "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { uc.Close() })
	l := &udpListener{conn: udpbatch.New(uc)}
	bound := netip.MustParseAddrPort("192.0.2.1:1000")
	peer := netip.MustParseAddrPort("192.0.2.2:2000")
	stranger := netip.MustParseAddrPort("198.51.100.7:7")
	alice := &client{key: newKey(f).Public(), udp: l, addr: bound}
	copy(alice.token[:], "tokentok")
	bob := &client{key: newKey(f).Public(), udp: l, addr: peer}
	for _, c := range []*client{alice, bob} {
		if err := s.register(c); err != nil {
			f.Fatal(err)
		}
	}

	h := relayproto.Hello{Client: alice.key}
	f.Add(relayproto.AppendHello(nil, h), uint16(0), false)
	f.Add(relayproto.AppendAuth(nil, relayproto.Auth{Client: alice.key}), uint16(0), false)
	f.Add(dataFrame(alice.token, bob.key, []byte("hello bob")), uint16(0), true)
	f.Add(dataFrame(alice.token, wire.Key{}, []byte("nobody")), uint16(0), true)
	f.Add(relayproto.AppendPing(nil, alice.token, 9), uint16(0), true)
	two := append(dataFrame(alice.token, bob.key, []byte("12345")), dataFrame(alice.token, bob.key, []byte("12"))...)
	f.Add(two, uint16(relayproto.DataHeader+5), true)
	f.Add([]byte{relayproto.TypeData}, uint16(1), false)

	r := newUDPReader(s, l)
	f.Fuzz(func(t *testing.T, data []byte, seg uint16, fromBound bool) {
		if len(data) == 0 || len(data) > udpbatch.MaxDatagram {
			return
		}
		from := stranger
		if fromBound {
			from = bound
		}
		// The read buffer keeps its full capacity, as in the real loop.
		m := &r.msgs[0]
		n := copy(m.Buf[:cap(m.Buf)], data)
		m.N, m.Seg, m.Addr = n, int(seg), from
		before := s.Stats()
		r.handle(r.msgs[:1])
		datagrams := 1
		if seg > 0 {
			datagrams = (n + int(seg) - 1) / int(seg)
		}
		largest := n
		if seg > 0 {
			largest = min(n, int(seg))
		}
		for i, out := range r.tx.msgs {
			switch out.Addr {
			case from:
				if len(out.Buf) > largest {
					t.Fatalf("reply of %d bytes to a datagram of at most %d", len(out.Buf), largest)
				}
			case peer:
				if !fromBound {
					t.Fatalf("a stranger's frame was forwarded (message %d)", i)
				}
			default:
				t.Fatalf("sent to %v", out.Addr)
			}
		}
		if len(r.tx.msgs) > datagrams {
			t.Fatalf("%d messages out for %d datagrams in", len(r.tx.msgs), datagrams)
		}
		if !fromBound && r.tx.fwdPackets > 0 {
			t.Fatal("a stranger's frame was counted as forwarded")
		}
		// Do not send: reset the batch as flush would.
		r.tx.msgs, r.tx.ls, r.tx.open, r.tx.arena = r.tx.msgs[:0], r.tx.ls[:0], false, r.tx.arena[:0]
		r.tx.fwdPackets, r.tx.fwdBytes, r.tx.unknown, r.tx.rate, r.tx.queue = 0, 0, 0, 0, 0
		if st := s.Stats(); st.Admitted != before.Admitted {
			t.Fatal("a fuzzed datagram was admitted")
		}
	})
}
