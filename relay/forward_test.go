package relay

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"testing"

	"github.com/weftmesh/weft/mesh/relayclient"
	"github.com/weftmesh/weft/wire"
)

// payload makes a recognisable payload of n bytes numbered i.
func payload(i, n int) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i*31 + j*7)
	}
	if n >= 4 {
		binary.BigEndian.PutUint32(b, uint32(i))
	}
	return b
}

func TestForwardBetweenTransports(t *testing.T) {
	r := startRelay(t, Config{})
	sizes := []int{1, 4, 100, 1400, 1441, 9000, 40000}
	for _, pair := range [][2]string{{"udp", "udp"}, {"tls", "tls"}, {"udp", "tls"}, {"tls", "udp"}} {
		t.Run(pair[0]+"_"+pair[1], func(t *testing.T) {
			a, aKey := r.dial(t, pair[0])
			b, bKey := r.dial(t, pair[1])
			// a → b, then b → a, each payload checked byte for byte in order.
			for i, n := range sizes {
				want := payload(i, n)
				if err := a.Send(bKey, want); err != nil {
					t.Fatal(err)
				}
				src, got := recv(t, b)
				if src != aKey || !bytes.Equal(got, want) {
					t.Fatalf("a→b payload %d (%d bytes): got %d bytes from %v", i, n, len(got), src)
				}
				if err := b.Send(aKey, want); err != nil {
					t.Fatal(err)
				}
				src, got = recv(t, a)
				if src != bKey || !bytes.Equal(got, want) {
					t.Fatalf("b→a payload %d (%d bytes): got %d bytes from %v", i, n, len(got), src)
				}
			}
			// A batch of equal-sized payloads (coalesced with GSO where available).
			var batch [][]byte
			for i := range 50 {
				batch = append(batch, payload(100+i, 1300))
			}
			if err := a.SendBatch(bKey, batch); err != nil {
				t.Fatal(err)
			}
			for i := range batch {
				_, got := recv(t, b)
				if !bytes.Equal(got, batch[i]) {
					t.Fatalf("batch payload %d: got %s", i, fmt.Sprint(got[:4]))
				}
			}
		})
	}
}

// A relay on a dual-stack socket (the default, ":443") serves IPv4 and IPv6 clients and
// forwards between them.
func TestDualStackUDP(t *testing.T) {
	s, err := New(Config{PrivateKey: newKey(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	uc, err := ListenUDP(ctx, "[::]:0")
	if err != nil {
		t.Skipf("no IPv6: %v", err)
	}
	go s.ServeUDP(ctx, uc)
	port := uc.LocalAddr().(*net.UDPAddr).Port
	dial := func(host string) (*relayclient.Conn, wire.Key) {
		priv := newKey(t)
		c, err := relayclient.Dial(ctx, relayclient.Config{UDPAddr: net.JoinHostPort(host, strconv.Itoa(port)), RelayKey: s.PublicKey(), PrivateKey: priv})
		if err != nil {
			t.Fatalf("dial %s: %v", host, err)
		}
		t.Cleanup(func() { c.Close() })
		return c, priv.Public()
	}
	v4, v4Key := dial("127.0.0.1")
	v6, v6Key := dial("::1")
	if got := v4.Status().Observed.Addr(); !got.Is4() {
		t.Errorf("IPv4 client observed as %v", got)
	}
	if err := v4.Send(v6Key, []byte("4to6")); err != nil {
		t.Fatal(err)
	}
	if src, got := recv(t, v6); src != v4Key || string(got) != "4to6" {
		t.Fatalf("got %q from %v", got, src)
	}
	if err := v6.Send(v4Key, []byte("6to4")); err != nil {
		t.Fatal(err)
	}
	if src, got := recv(t, v4); src != v6Key || string(got) != "6to4" {
		t.Fatalf("got %q from %v", got, src)
	}
}

// RecvBatchUntil gives up, with nothing and no error, when its stop channel yields, and
// reads as RecvBatch otherwise; a payload sent meanwhile is not lost.
func TestRecvBatchUntil(t *testing.T) {
	r := startRelay(t, Config{})
	a, _ := r.dial(t, "udp")
	b, bKey := r.dial(t, "udp")
	bufs := [][]byte{make([]byte, 2048), make([]byte, 2048)}
	sizes := make([]int, 2)
	srcs := make([]wire.Key, 2)

	stop := make(chan struct{}, 1)
	stop <- struct{}{}
	if n, err := b.RecvBatchUntil(stop, bufs, sizes, srcs); n != 0 || err != nil {
		t.Fatalf("stopped read: %d, %v; want 0, nil", n, err)
	}
	want := payload(1, 1300)
	if err := a.Send(bKey, want); err != nil {
		t.Fatal(err)
	}
	n, err := b.RecvBatchUntil(make(chan struct{}), bufs, sizes, srcs)
	if err != nil || n != 1 || !bytes.Equal(bufs[0][:sizes[0]], want) {
		t.Fatalf("read: %d, %v", n, err)
	}
	b.Close()
	if n, err := b.RecvBatchUntil(make(chan struct{}), bufs, sizes, srcs); n != 0 || err == nil {
		t.Fatalf("after Close: %d, %v; want an error", n, err)
	}
}
