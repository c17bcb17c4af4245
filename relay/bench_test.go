package relay

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/udpbatch"
	"github.com/weftmesh/weft/wire"
)

// BenchmarkUDPForward measures what the relay delivers from one UDP client to another
// on loopback, against a plain UDP forwarder in the same process that passes batches on
// untouched (same batching, GSO and GRO, no parsing, lookups or rewriting). Both get
// the same sender and receiver; "ratio" is relay throughput over plain throughput.
func BenchmarkUDPForward(b *testing.B) {
	const size = 1400                         // payload: a full-size WireGuard packet
	r := startRelay(b, Config{Rate: 1 << 40}) // the default per-client rate would be what is measured
	recvPriv := newKey(b)
	rx := newRawUDP(b, r, recvPriv)
	rx.login()
	tx := newRawUDP(b, r, newKey(b))
	tx.login()

	// The sender's frames: 64 Data frames to the receiver, back to back, as one GSO run.
	frame := dataFrame(tx.token, recvPriv.Public(), make([]byte, size))
	run := make([]byte, 0, 64*len(frame))
	for range 64 {
		run = append(run, frame...)
	}

	relayBps := measure(b, tx.c, rx.c, run, len(frame), size)

	// The plain forwarder gets a pair of sockets connected to it, like the relay's.
	fwdAddr, setDst := startPlainForwarder(b)
	ptx, err := udpbatch.Dial(context.Background(), "udp", fwdAddr)
	if err != nil {
		b.Fatal(err)
	}
	defer ptx.Close()
	prx, err := udpbatch.Dial(context.Background(), "udp", fwdAddr)
	if err != nil {
		b.Fatal(err)
	}
	defer prx.Close()
	setDst(prx.LocalAddr())
	plainBps := measure(b, ptx, prx, run, len(frame), size)
	b.ReportMetric(relayBps/1e6, "relay-MB/s")
	b.ReportMetric(plainBps/1e6, "plain-MB/s")
	b.ReportMetric(relayBps/plainBps, "ratio")
	if st := r.Stats(); st.DroppedRate+st.DroppedSend+st.DroppedUnauth > 0 {
		b.Fatalf("relay dropped frames: %+v", st)
	}
}

// window bounds the frames in flight, well within the socket buffers, so the sender
// measures how fast frames get through rather than how many the kernel drops.
const window = 1024

// measure sends b.N frames (in GSO runs of 64) on tx, keeping at most window in flight,
// and returns the payload bytes per second that arrive at rx.
func measure(b *testing.B, tx, rx *net.UDPConn, run []byte, frameLen, payload int) float64 {
	send := udpbatch.New(tx)
	recv := udpbatch.New(rx)

	var got atomic.Int64
	progress := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		msgs := make([]udpbatch.Msg, 64)
		for i := range msgs {
			msgs[i].Buf = make([]byte, udpbatch.MaxDatagram)
		}
		for got.Load() < int64(b.N) {
			// A generous deadline only ends a run that lost frames.
			rx.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := recv.ReadBatch(msgs)
			if err != nil {
				return
			}
			for i := range n {
				msgs[i].Segments(func([]byte) { got.Add(1) })
			}
			select {
			case progress <- struct{}{}:
			default:
			}
		}
	}()
	b.ResetTimer()
	start := time.Now()
	msg := []udpbatch.Msg{{Buf: run, Seg: frameLen}}
	for sent := 0; sent < b.N; sent += 64 {
		for int64(sent)-got.Load() > window {
			select {
			case <-progress:
			case <-done:
				b.Fatalf("frames lost: %d of %d arrived", got.Load(), sent)
			}
		}
		n := min(64, b.N-sent)
		msg[0].Buf = run[:n*frameLen]
		if err := send.WriteBatch(msg); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	elapsed := time.Since(start)
	b.StopTimer()
	if got.Load() != int64(b.N) {
		b.Fatalf("frames lost: %d of %d arrived", got.Load(), b.N)
	}
	return float64(int64(b.N)*int64(payload)) / elapsed.Seconds()
}

// startPlainForwarder passes every datagram it gets on, batch for batch, to the address
// given to the function it returns with its own address.
func startPlainForwarder(b *testing.B) (string, func(net.Addr)) {
	ctx, cancel := context.WithCancel(context.Background())
	uc, err := udpbatch.Listen(ctx, "udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); uc.Close() })
	c := udpbatch.New(uc)
	var dst atomic.Pointer[netip.AddrPort]
	go func() {
		msgs := make([]udpbatch.Msg, batchSize)
		for i := range msgs {
			msgs[i].Buf = make([]byte, udpbatch.MaxDatagram)
		}
		out := make([]udpbatch.Msg, batchSize)
		for {
			n, err := c.ReadBatch(msgs)
			if err != nil {
				return
			}
			to := dst.Load()
			if to == nil {
				continue
			}
			for i := range n {
				out[i] = udpbatch.Msg{Buf: msgs[i].Buf[:msgs[i].N], Seg: msgs[i].Seg, Addr: *to}
			}
			c.WriteBatch(out[:n])
		}
	}()
	return uc.LocalAddr().String(), func(a net.Addr) {
		ap := a.(*net.UDPAddr).AddrPort()
		dst.Store(&ap)
	}
}

// BenchmarkClientForward measures the whole path through the client library: one
// relayclient.Conn sends 1400-byte payloads in batches of 64 through the relay to
// another, over each transport, with a bounded number of payloads in flight: over TLS
// no more than the receiver's queue at the relay holds (DefaultQueueLen), since beyond
// it the relay drops frames, as it should. Drops are reported as "loss".
func BenchmarkClientForward(b *testing.B) {
	const size = 1400
	for _, tr := range []string{"udp", "tls"} {
		b.Run(tr, func(b *testing.B) {
			r := startRelay(b, Config{Rate: 1 << 40})
			inflight := int64(window)
			if tr == "tls" {
				inflight = DefaultQueueLen - 64
			}
			a, _ := r.dial(b, tr)
			c, cKey := r.dial(b, tr)
			batch := make([][]byte, 64)
			for i := range batch {
				batch[i] = make([]byte, size)
			}
			var got atomic.Int64
			progress := make(chan struct{}, 1)
			done := make(chan struct{})
			go func() {
				defer close(done)
				bufs := make([][]byte, 64)
				for i := range bufs {
					bufs[i] = make([]byte, 2048)
				}
				sizes := make([]int, 64)
				srcs := make([]wire.Key, 64)
				for got.Load() < int64(b.N) {
					n, err := c.RecvBatch(bufs, sizes, srcs)
					if err != nil {
						return
					}
					got.Add(int64(n))
					select {
					case progress <- struct{}{}:
					default:
					}
				}
			}()
			dropped := func() int64 {
				st := r.Stats()
				return int64(st.DroppedQueue + st.DroppedRate)
			}
			b.ResetTimer()
			start := time.Now()
			for sent := 0; sent < b.N; sent += 64 {
				for int64(sent)-got.Load()-dropped() > inflight {
					select {
					case <-progress:
					case <-time.After(2 * time.Second):
						b.Fatalf("frames lost: %d of %d arrived", got.Load(), sent)
					}
				}
				if err := a.SendBatch(cKey, batch[:min(64, b.N-sent)]); err != nil {
					b.Fatal(err)
				}
			}
			for got.Load()+dropped() < int64(b.N) {
				select {
				case <-done:
				case <-progress:
				case <-time.After(5 * time.Second):
					b.Fatalf("frames lost: %d of %d arrived, %d dropped", got.Load(), b.N, dropped())
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(got.Load()*size)/elapsed.Seconds()/1e6, "MB/s")
			b.ReportMetric(100*float64(dropped())/float64(b.N), "loss%")
		})
	}
}
