package bind

import (
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/weftmesh/weft/wire"
	"golang.zx2c4.com/wireguard/conn"
)

type relayed struct {
	src wire.Key
	pkt []byte
}

// pullRelay is a relay the bind reads from: each batch sent on in comes out of one
// RecvBatchUntil call; entered tells that a call began.
type pullRelay struct {
	fakeRelay
	in      chan []relayed
	closed  chan struct{}
	entered chan struct{}
}

func newPullRelay() *pullRelay {
	return &pullRelay{in: make(chan []relayed, 4), closed: make(chan struct{}), entered: make(chan struct{}, 16)}
}

func (r *pullRelay) RecvBatchUntil(stop <-chan struct{}, bufs [][]byte, sizes []int, srcs []wire.Key) (int, error) {
	select {
	case r.entered <- struct{}{}:
	default:
	}
	select {
	case batch := <-r.in:
		for i, p := range batch {
			sizes[i], srcs[i] = copy(bufs[i], p.pkt), p.src
		}
		return len(batch), nil
	case <-r.closed:
		return 0, net.ErrClosed
	case <-stop:
		return 0, nil
	}
}

// waitEntered waits until r's RecvBatchUntil was called.
func (r *pullRelay) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-r.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the relay receive function did not read from the relay")
	}
}

type recvResult struct {
	n     int
	err   error
	sizes []int
	eps   []conn.Endpoint
	bufs  [][]byte
}

// receive calls fn in the background with a fresh batch of buffers.
func receive(fn conn.ReceiveFunc) <-chan recvResult {
	out := make(chan recvResult, 1)
	bufs := make([][]byte, conn.IdealBatchSize)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	sizes := make([]int, len(bufs))
	eps := make([]conn.Endpoint, len(bufs))
	go func() {
		n, err := fn(bufs, sizes, eps)
		out <- recvResult{n, err, sizes, eps, bufs}
	}()
	return out
}

func result(t *testing.T, ch <-chan recvResult) recvResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("the relay receive function returned nothing")
		return recvResult{}
	}
}

// TestRelayReceive: a batch read from the relay is sorted in place: WireGuard packets of
// known peers go to WireGuard with their endpoint, disco to its handler, the rest get
// size 0; Close ends a read that waits on the relay.
func TestRelayReceive(t *testing.T) {
	var rec recorder
	b, fns, _ := openBind(t, rec.handlers())
	relayFn := fns[len(fns)-1]
	pe := b.Peer(keyA)
	r := newPullRelay()
	b.SetRelay(r)

	r.in <- []relayed{
		{keyA, wgPacket(100, 1)},
		{keyA, wgPacket(120, 2)},
		{keyB, wgPacket(100, 3)}, // not a peer
		{keyA, []byte("junk")},
		{keyA, discoPacket(t)},
	}
	got := result(t, receive(relayFn))
	if got.err != nil || got.n != 5 {
		t.Fatalf("got %d, %v; want the batch of 5 in place", got.n, got.err)
	}
	if want := []int{100, 120, 0, 0, 0}; !slices.Equal(got.sizes[:5], want) {
		t.Fatalf("sizes %v, want %v", got.sizes[:5], want)
	}
	if got.eps[0] != conn.Endpoint(pe) || got.eps[1] != conn.Endpoint(pe) || got.bufs[1][5] != 2 {
		t.Fatalf("endpoints %v, byte %d", got.eps[:2], got.bufs[1][5])
	}
	if len(rec.disco) != 1 || rec.disco[0].Relay != keyA || rec.disco[0].Addr.IsValid() {
		t.Fatalf("disco through the relay: %+v", rec.disco)
	}

	pending := receive(relayFn)
	r.waitEntered(t)
	b.Close()
	if res := result(t, pending); !errors.Is(res.err, net.ErrClosed) {
		t.Fatalf("after Close: %d, %v", res.n, res.err)
	}
}

// TestRelayReceiveFollowsRelay: a read waiting on one relay moves to the next one set, a
// closed relay is waited out rather than reported, and no relay means waiting.
func TestRelayReceiveFollowsRelay(t *testing.T) {
	b, fns, _ := openBind(t, Config{})
	relayFn := fns[len(fns)-1]
	pe := b.Peer(keyA)
	r1, r2, r3 := newPullRelay(), newPullRelay(), newPullRelay()
	b.SetRelay(r1)

	pending := receive(relayFn)
	r1.waitEntered(t)
	b.SetRelay(r2)
	r2.waitEntered(t)
	r2.in <- []relayed{{keyA, wgPacket(80, 7)}}
	if got := result(t, pending); got.n != 1 || got.sizes[0] != 80 || got.eps[0] != conn.Endpoint(pe) {
		t.Fatalf("from the new relay: %d packets, sizes %v, %v", got.n, got.sizes[:1], got.err)
	}

	pending = receive(relayFn)
	r2.waitEntered(t)
	close(r2.closed)
	b.SetRelay(nil)
	b.SetRelay(r3)
	r3.waitEntered(t)
	r3.in <- []relayed{{keyA, wgPacket(90, 8)}}
	if got := result(t, pending); got.err != nil || got.n != 1 || got.sizes[0] != 90 {
		t.Fatalf("after the relay closed: %d packets, sizes %v, %v", got.n, got.sizes[:1], got.err)
	}
}

// TestRelayReceiveAux: packets queued from an aux socket end a read waiting on the relay.
func TestRelayReceiveAux(t *testing.T) {
	b, fns, _ := openBind(t, Config{})
	relayFn := fns[len(fns)-1]
	pe := b.Peer(keyA)
	r := newPullRelay()
	b.SetRelay(r)
	pending := receive(relayFn)
	r.waitEntered(t)
	pkt := wgPacket(70, 9)
	b.queueIn(pe, pkt)
	pkt[5] = 0 // queued as a copy
	got := result(t, pending)
	if got.err != nil || got.n != 1 || got.sizes[0] != 70 || got.bufs[0][5] != 9 || got.eps[0] != conn.Endpoint(pe) {
		t.Fatalf("aux packet: %d, sizes %v, byte %d, %v", got.n, got.sizes[:1], got.bufs[0][5], got.err)
	}
}

func TestRelayQueueBounded(t *testing.T) {
	b := New(Config{})
	pe := b.Peer(keyA)
	for range relayQueue + 10 {
		b.queueIn(pe, wgPacket(64, 0))
	}
	if b.RelayDrops() != 10 {
		t.Fatalf("dropped %d, want 10", b.RelayDrops())
	}
}

// waitSent waits until r was given n packets.
func waitSent(t *testing.T, r *fakeRelay, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		r.mu.Lock()
		got := len(r.pkts)
		r.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the relay got %d packets, want %d", got, n)
		}
	}
}
