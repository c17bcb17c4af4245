package udpbatch

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"
)

// A run written with a segment size arrives as separate datagrams of that size (the
// last shorter), whether the socket segments it (GSO) or WriteBatch splits it, and
// reads return them intact whether or not the receiver coalesces them (GRO).
func TestRunArrivesAsDatagrams(t *testing.T) {
	ctx := context.Background()
	rc, err := Listen(ctx, "udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	sc, err := Listen(ctx, "udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	recv, send := New(rc), New(sc)
	to := rc.LocalAddr().(interface{ AddrPort() netip.AddrPort }).AddrPort()

	var run []byte
	var want [][]byte
	for i, n := range []int{100, 100, 100, 50} {
		d := bytes.Repeat([]byte{byte(i + 1)}, n)
		run = append(run, d...)
		want = append(want, d)
	}
	single := []byte("single")
	want = append(want, single)
	if err := send.WriteBatch([]Msg{{Buf: run, Seg: 100, Addr: to}, {Buf: single, Addr: to}}); err != nil {
		t.Fatal(err)
	}

	msgs := make([]Msg, 8)
	for i := range msgs {
		msgs[i].Buf = make([]byte, MaxDatagram)
	}
	var got [][]byte
	rc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(got) < len(want) {
		n, err := recv.ReadBatch(msgs)
		if err != nil {
			t.Fatalf("read: %v (got %d of %d)", err, len(got), len(want))
		}
		for i := range n {
			if msgs[i].Addr != send.UDPConn().LocalAddr().(interface{ AddrPort() netip.AddrPort }).AddrPort() {
				t.Errorf("source %v", msgs[i].Addr)
			}
			msgs[i].Segments(func(p []byte) { got = append(got, append([]byte{}, p...)) })
		}
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("datagram %d: got %d bytes of %d, want %d of %d", i, len(got[i]), got[i][0], len(want[i]), want[i][0])
		}
	}
	t.Logf("gso=%v gro=%v", send.GSO(), recv.GRO())
}
