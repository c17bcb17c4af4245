package relay

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/relayproto"
	"github.com/weftmesh/weft/mesh/relayclient"
)

// udpNAT stands between clients and the relay as a NAT router does: each client address
// gets its own outside socket. roam forgets every mapping, as a router that got a new
// address and lost its conntrack state does: a known client's next packets leave from a
// new socket (the relay drops them: a session is bound to the address it was made from),
// and what the relay sends to the old one is lost.
type udpNAT struct {
	in     *net.UDPConn
	target *net.UDPAddr
	pings  atomic.Int64 // pings passed on to the relay

	mu  sync.Mutex // guards out
	out map[netip.AddrPort]*net.UDPConn
}

func startUDPNAT(t *testing.T, target string) *udpNAT {
	t.Helper()
	in, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	n := &udpNAT{in: in, target: ta, out: map[netip.AddrPort]*net.UDPConn{}}
	t.Cleanup(func() {
		in.Close()
		n.roam()
	})
	go n.run()
	return n
}

func (n *udpNAT) addr() string { return n.in.LocalAddr().String() }

func (n *udpNAT) run() {
	buf := make([]byte, 1<<16)
	for {
		k, from, err := n.in.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if k > 0 && buf[0] == relayproto.TypePing {
			n.pings.Add(1)
		}
		n.mu.Lock()
		out := n.out[from]
		if out == nil {
			if out, err = net.DialUDP("udp", nil, n.target); err != nil {
				n.mu.Unlock()
				continue
			}
			n.out[from] = out
			go n.back(out, from)
		}
		n.mu.Unlock()
		out.Write(buf[:k])
	}
}

// back passes the relay's datagrams on to the client until out is closed.
func (n *udpNAT) back(out *net.UDPConn, client netip.AddrPort) {
	buf := make([]byte, 1<<16)
	for {
		k, err := out.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		n.in.WriteToUDPAddrPort(buf[:k], client)
	}
}

func (n *udpNAT) roam() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, c := range n.out {
		c.Close()
		delete(n.out, k)
	}
}

// tcpStall passes TCP connections on to the relay until stall, which turns every
// connection open then into a black hole (what arrives is dropped, nothing is answered,
// nothing is closed), as a NAT that lost its state and drops what it no longer knows does.
// Later connections pass.
type tcpStall struct {
	ln     net.Listener
	target string

	mu    sync.Mutex // guards conns
	conns []*atomic.Bool
}

func startTCPStall(t *testing.T, target string) *tcpStall {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpStall{ln: ln, target: target}
	var wg sync.WaitGroup
	var open []net.Conn
	var omu sync.Mutex
	t.Cleanup(func() {
		ln.Close()
		omu.Lock()
		for _, c := range open {
			c.Close()
		}
		omu.Unlock()
		wg.Wait()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			omu.Lock()
			open = append(open, c, up)
			omu.Unlock()
			stalled := &atomic.Bool{}
			p.mu.Lock()
			p.conns = append(p.conns, stalled)
			p.mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); pass(up, c, stalled) }()
			go func() { defer wg.Done(); pass(c, up, stalled) }()
		}
	}()
	return p
}

// pass copies src to dst while not stalled, and discards afterwards.
func pass(dst io.Writer, src io.Reader, stalled *atomic.Bool) {
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if err != nil {
			return
		}
		if !stalled.Load() {
			dst.Write(buf[:k])
		}
	}
}

func (p *tcpStall) stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.conns {
		s.Store(true)
	}
}

// echoPeer answers every payload it receives with the same payload.
func echoPeer(c *relayclient.Conn) {
	buf := make([]byte, 2048)
	for {
		src, n, err := c.Recv(buf)
		if err != nil {
			return
		}
		c.Send(src, buf[:n])
	}
}

// countRecv counts what c receives, and notes whether want came.
func countRecv(c *relayclient.Conn, count *atomic.Int64, want string, got *atomic.Bool) {
	buf := make([]byte, 2048)
	for {
		_, n, err := c.Recv(buf)
		if err != nil {
			return
		}
		count.Add(1)
		if string(buf[:n]) == want {
			got.Store(true)
		}
	}
}

// A session whose relay stops answering while data is sent through it (the device roamed,
// or its NAT forgot the TCP connection) is noticed and made again, with a signal, long
// before a keepalive is even due; and traffic flows again.
func TestClientNoticesSilenceWhileSending(t *testing.T) {
	r := startRelay(t, Config{})
	for _, tr := range []string{"udp", "tls"} {
		t.Run(tr, func(t *testing.T) {
			cfg := r.config(tr, newKey(t))
			var breakPath func()
			if tr == "udp" {
				nat := startUDPNAT(t, r.udp)
				cfg.UDPAddr, breakPath = nat.addr(), nat.roam
			} else {
				st := startTCPStall(t, r.url[len("https://"):])
				cfg.URL, breakPath = "https://"+st.ln.Addr().String(), st.stall
			}
			cfg.Keepalive = time.Hour // only the check while sending can notice
			var lost atomic.Int64
			cfg.OnLost = func() { lost.Add(1) }
			a, err := relayclient.Dial(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			b, bKey := r.dial(t, "udp")
			go echoPeer(b)
			var marker atomic.Bool
			var echoes atomic.Int64
			go countRecv(a, &echoes, "after", &marker)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
						a.Send(bKey, []byte("ping"))
					}
				}
			}()
			eventually(t, "echoes before the break", func() bool { return echoes.Load() > 0 })
			breakPath()
			eventually(t, "a new session", func() bool {
				st := a.Status()
				return st.Connected && st.Reconnects == 1
			})
			if lost.Load() != 1 {
				t.Fatalf("OnLost called %d times, want 1", lost.Load())
			}
			eventually(t, "an echo through the new session", func() bool {
				if err := a.Send(bKey, []byte("after")); err != nil && !errors.Is(err, relayclient.ErrNotConnected) {
					t.Fatal(err)
				}
				return marker.Load()
			})
		})
	}
}

// An idle session is not probed: after its path broke nothing is sent, so nothing is
// noticed (until its keepalive is due) and the relay is not pinged; the first send is
// then noticed, and the session made again.
func TestIdleSessionNotProbed(t *testing.T) {
	r := startRelay(t, Config{})
	nat := startUDPNAT(t, r.udp)
	cfg := r.config("udp", newKey(t))
	cfg.UDPAddr, cfg.Keepalive = nat.addr(), time.Hour
	a, err := relayclient.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, bKey := r.dial(t, "udp")
	go echoPeer(b)
	var marker atomic.Bool
	var got atomic.Int64
	go countRecv(a, &got, "hello", &marker)

	nat.roam()
	// Idle for several times the time a sending session needs to be given up.
	time.Sleep(3 * time.Second)
	if n := nat.pings.Load(); n != 0 {
		t.Fatalf("an idle session was pinged %d times", n)
	}
	if st := a.Status(); st.Reconnects != 0 {
		t.Fatalf("an idle session was made again: %+v", st)
	}
	eventually(t, "a send to be noticed unanswered, and answered on a new session", func() bool {
		if err := a.Send(bKey, []byte("hello")); err != nil && !errors.Is(err, relayclient.ErrNotConnected) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		return marker.Load()
	})
	if st := a.Status(); st.Reconnects != 1 {
		t.Fatalf("status %+v, want one reconnection", st)
	}
}
