package relay

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/mesh/relayclient"
)

// A client asked to reconnect (as after a network change) comes back on a fresh
// session and keeps forwarding.
func TestClientReconnect(t *testing.T) {
	r := startRelay(t, Config{})
	for _, tr := range []string{"udp", "tls"} {
		t.Run(tr, func(t *testing.T) {
			a, aKey := r.dial(t, tr)
			b, bKey := r.dial(t, "udp")
			a.Reconnect()
			eventually(t, "the reconnect", func() bool {
				st := a.Status()
				return st.Connected && st.Reconnects == 1
			})
			if err := a.Send(bKey, []byte("after")); err != nil {
				t.Fatal(err)
			}
			if src, got := recv(t, b); src != aKey || string(got) != "after" {
				t.Fatalf("got %q from %v", got, src)
			}
			if err := b.Send(aKey, []byte("back")); err != nil {
				t.Fatal(err)
			}
			if _, got := recv(t, a); string(got) != "back" {
				t.Fatalf("got %q", got)
			}
		})
	}
}

// When the relay restarts it has forgotten every session: keepalives go unanswered,
// and the client finds the new relay on its own.
func TestClientSurvivesRelayRestart(t *testing.T) {
	key := newKey(t)
	s1, err := New(Config{PrivateKey: key, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx1, stop1 := context.WithCancel(context.Background())
	uc, err := ListenUDP(ctx1, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := uc.LocalAddr().String()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s1.ServeUDP(ctx1, uc) }()

	c, err := relayclient.Dial(context.Background(), relayclient.Config{
		UDPAddr: addr, RelayKey: key.Public(), PrivateKey: newKey(t), Keepalive: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop1()
	wg.Wait()

	s2, err := New(Config{PrivateKey: key, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx2, stop2 := context.WithCancel(context.Background())
	defer stop2()
	uc2, err := ListenUDP(ctx2, addr)
	if err != nil {
		t.Fatal(err)
	}
	go s2.ServeUDP(ctx2, uc2)
	eventually(t, "the client to reconnect", func() bool {
		st := c.Status()
		return st.Connected && st.Reconnects >= 1 && s2.Stats().Clients == 1
	})
}

// A device that stops reading for a while (WireGuard busy, say) keeps its session: the
// client goes on answering keepalives, dropping what it cannot hand over, and delivers
// again once the device reads.
func TestStalledReaderKeepsSession(t *testing.T) {
	r := startRelay(t, Config{})
	for _, tr := range []string{"udp", "tls"} {
		t.Run(tr, func(t *testing.T) {
			cfg := r.config(tr, newKey(t))
			cfg.Keepalive = 100 * time.Millisecond
			a, err := relayclient.Dial(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			aKey := cfg.PrivateKey.Public()
			b, _ := r.dial(t, "udp")
			batch := make([][]byte, 64)
			for i := range batch {
				batch[i] = make([]byte, 1000)
			}
			for range 20 {
				if err := b.SendBatch(aKey, batch); err != nil {
					t.Fatal(err)
				}
			}
			// Long enough for the client to give up waiting for a free batch (1 s) and
			// for many keepalives to need answers meanwhile.
			time.Sleep(2500 * time.Millisecond)
			if st := a.Status(); !st.Connected || st.Reconnects != 0 {
				t.Fatalf("status %+v: the session did not survive", st)
			}
			// Frames that came while it was stalled were dropped; new ones arrive.
			seen := make(chan struct{})
			go func() {
				buf := make([]byte, 2048)
				for {
					_, n, err := a.Recv(buf)
					if err != nil {
						return
					}
					if string(buf[:n]) == "marker" {
						close(seen)
						return
					}
				}
			}()
			eventually(t, "a marker to arrive", func() bool {
				select {
				case <-seen:
					return true
				default:
				}
				if err := b.Send(aKey, []byte("marker")); err != nil {
					t.Fatal(err)
				}
				return false
			})
		})
	}
}
