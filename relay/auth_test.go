package relay

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/relayproto"
	"github.com/weftmesh/weft/mesh/relayclient"
)

// Sizes that keep a challenge from amplifying a hello and make every reply to an
// authenticated message no larger than the message.
func TestNoAmplification(t *testing.T) {
	if relayproto.ChallengeSize > relayproto.HelloSize {
		t.Errorf("challenge %d bytes > hello %d", relayproto.ChallengeSize, relayproto.HelloSize)
	}
	if relayproto.WelcomeSize > relayproto.AuthSize || relayproto.RefusedSize > relayproto.AuthSize {
		t.Errorf("welcome %d / refused %d bytes > auth %d", relayproto.WelcomeSize, relayproto.RefusedSize, relayproto.AuthSize)
	}
	if relayproto.PongSize > relayproto.PingSize {
		t.Errorf("pong %d bytes > ping %d", relayproto.PongSize, relayproto.PingSize)
	}
}

// A client that cannot prove the key it claims (here: B's, to steal B's traffic) gets
// no reply, no session, and cannot send.
func TestWrongKeyGetsNothing(t *testing.T) {
	r := startRelay(t, Config{})
	a, aKey := r.dial(t, "udp")
	b, bKey := r.dial(t, "udp")

	m := newRawUDP(t, r, newKey(t))
	h, ch := m.challenge(bKey) // claims B's key, holds another
	m.send(m.auth(h, ch, m.priv))
	var guessed relayproto.Token
	copy(guessed[:], "12345678")
	m.send(dataFrame(guessed, aKey, []byte("forged")))
	m.send(relayproto.AppendPing(nil, guessed, 1))
	m.marker()

	st := r.Stats()
	if st.AuthFailed != 1 || st.Admitted != 2 || st.DroppedUnauth != 2 {
		t.Errorf("stats %+v: want 1 failed auth, 2 admitted, 2 unauthenticated drops", st)
	}
	// B still holds its session: A reaches B, and the forged frame never reached A.
	if err := a.Send(bKey, []byte("to b")); err != nil {
		t.Fatal(err)
	}
	if src, got := recv(t, b); src != aKey || string(got) != "to b" {
		t.Fatalf("b got %q from %v", got, src)
	}
	if err := b.Send(aKey, []byte("to a")); err != nil {
		t.Fatal(err)
	}
	if _, got := recv(t, a); string(got) != "to a" {
		t.Fatalf("a got %q first, want the legitimate frame", got)
	}
}

// Garbage and malformed handshakes get no reply either.
func TestGarbageGetsNothing(t *testing.T) {
	r := startRelay(t, Config{})
	m := newRawUDP(t, r, newKey(t))
	hello, _ := m.hello(m.priv.Public())
	for _, b := range [][]byte{
		{0},
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		{1, 0, 0, 0, 1, 2, 3, 4},              // a WireGuard handshake initiation's start
		hello[:relayproto.HelloSize-1],        // short hello
		append(append([]byte{}, hello...), 0), // long hello
		append(append([]byte{}, hello[:60]...), 1, 0, 0, 0), // non-zero padding
		make([]byte, relayproto.AuthSize),
	} {
		m.send(b)
	}
	m.marker()
	if st := r.Stats(); st.Challenges != 1 || st.Admitted != 0 {
		t.Errorf("stats %+v: want exactly the marker's challenge", st)
	}
}

// A captured answer to a challenge cannot be used again, even from the same address.
func TestReplayedAuthRejected(t *testing.T) {
	r := startRelay(t, Config{})
	m := newRawUDP(t, r, newKey(t))
	auth := m.login()
	first := m.token
	m.send(auth)
	m.marker()
	if st := r.Stats(); st.Admitted != 1 || st.AuthFailed != 1 {
		t.Errorf("stats %+v: want 1 admitted and the replay failed", st)
	}
	// The original session still works.
	m.send(relayproto.AppendPing(nil, first, 42))
	if echo, ok := relayproto.ParsePong(m.read()); !ok || echo != 42 {
		t.Fatal("the session was disturbed by the replay")
	}
}

// An answer from another address than the hello's is refused: the cookie binds it.
func TestAuthFromOtherAddressRejected(t *testing.T) {
	r := startRelay(t, Config{})
	priv := newKey(t)
	m1, m2 := newRawUDP(t, r, priv), newRawUDP(t, r, priv)
	h, ch := m1.challenge(priv.Public())
	m2.send(m2.auth(h, ch, priv))
	m2.marker()
	if st := r.Stats(); st.Admitted != 0 || st.AuthFailed != 1 {
		t.Errorf("stats %+v: want the answer refused", st)
	}
}

// A valid token from another address is worth nothing: frames are matched to a
// session by source address, then the token is checked. Only a new handshake from
// the new address moves the binding.
func TestTokenFromOtherAddressRejected(t *testing.T) {
	r := startRelay(t, Config{})
	b, bKey := r.dial(t, "udp")
	priv := newKey(t)
	m1, m2 := newRawUDP(t, r, priv), newRawUDP(t, r, priv)
	m1.login()
	m2.token = m1.token // a spoofer that learned the token

	m2.send(dataFrame(m2.token, bKey, []byte("spoofed")))
	m2.send(relayproto.AppendPing(nil, m2.token, 7))
	m2.marker()
	m1.send(dataFrame(m1.token, bKey, []byte("genuine")))
	if src, got := recv(t, b); src != priv.Public() || string(got) != "genuine" {
		t.Fatalf("b got %q from %v first, want the genuine frame", got, src)
	}
	if st := r.Stats(); st.DroppedUnauth != 2 {
		t.Errorf("stats %+v: want 2 unauthenticated drops", st)
	}

	// Re-authenticating from the second address moves the binding there.
	m2.login()
	m1.send(dataFrame(m1.token, bKey, []byte("stale")))
	m1.marker()
	m2.send(dataFrame(m2.token, bKey, []byte("moved")))
	if _, got := recv(t, b); string(got) != "moved" {
		t.Fatalf("b got %q, want the frame from the new binding", got)
	}
}

// Handshake messages from one source are rate limited.
func TestHelloRateLimited(t *testing.T) {
	const burst, perSec, sent = 5, 1, 30
	r := startRelay(t, Config{}, func(s *Server) { s.hellos = newIPLimiter(burst, perSec) })
	m := newRawUDP(t, r, newKey(t))
	start := time.Now()
	for range sent {
		msg, _ := m.hello(m.priv.Public())
		m.send(msg)
	}
	eventually(t, "every hello to be handled", func() bool {
		st := r.Stats()
		return st.Challenges+st.HelloLimited == sent
	})
	elapsed := time.Since(start)
	st := r.Stats()
	if limit := burst + perSec*elapsed.Seconds(); float64(st.Challenges) > limit || st.HelloLimited == 0 {
		t.Fatalf("%d challenges, %d limited in %v: want at most %.1f challenges", st.Challenges, st.HelloLimited, elapsed, limit)
	}
	for range st.Challenges {
		if _, err := relayproto.ParseChallenge(m.read()); err != nil {
			t.Fatal(err)
		}
	}
}

// The client refuses a relay that cannot prove the relay key: a fake that answers the
// handshake without it.
func TestClientRejectsImpostor(t *testing.T) {
	for _, reply := range []string{"welcome", "refused"} {
		t.Run(reply, func(t *testing.T) {
			pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			go func() {
				buf := make([]byte, 1<<16)
				for {
					n, from, err := pc.ReadFromUDPAddrPort(buf)
					if err != nil {
						return
					}
					switch buf[0] {
					case relayproto.TypeHello:
						h, _ := relayproto.ParseHello(buf[:n])
						pc.WriteToUDPAddrPort(relayproto.AppendChallenge(nil, relayproto.Challenge{ClientNonce: h.Nonce}), from)
					case relayproto.TypeAuth:
						a, _ := relayproto.ParseAuth(buf[:n])
						var b []byte
						if reply == "welcome" {
							b = relayproto.AppendWelcome(nil, relayproto.Welcome{ClientNonce: a.ClientNonce, LeaseSecs: 60})
						} else {
							b = relayproto.AppendRefused(nil, relayproto.Refused{ClientNonce: a.ClientNonce, Reason: relayproto.RefusedFull})
						}
						pc.WriteToUDPAddrPort(b, from)
					}
				}
			}()
			_, err = relayclient.Dial(context.Background(), relayclient.Config{
				UDPAddr: pc.LocalAddr().String(), RelayKey: newKey(t).Public(), PrivateKey: newKey(t),
			})
			if !errors.Is(err, relayclient.ErrRelayKey) {
				t.Fatalf("dial: %v, want ErrRelayKey", err)
			}
		})
	}
}

// A client configured with the wrong relay key cannot authenticate: the relay stays
// silent and the dial times out.
func TestClientWithWrongRelayKey(t *testing.T) {
	r := startRelay(t, Config{})
	for _, tr := range []string{"udp", "tls"} {
		cfg := r.config(tr, newKey(t))
		cfg.RelayKey = newKey(t).Public()
		cfg.HandshakeTimeout = time.Second
		if c, err := relayclient.Dial(context.Background(), cfg); err == nil {
			c.Close()
			t.Fatalf("%s: dial with the wrong relay key succeeded", tr)
		}
	}
	if st := r.Stats(); st.AuthFailed < 2 || st.Admitted != 0 {
		t.Errorf("stats %+v: want every proof failed (at least one per transport)", st)
	}
}

// The key proof is bound to the TLS session, so a TLS-terminating man in the middle
// that passes the handshake through cannot complete it.
func TestTLSChannelBinding(t *testing.T) {
	r := startRelay(t, Config{})
	mitm := startTLSMITM(t, r.url[len("https://"):])
	cfg := r.config("tls", newKey(t))
	cfg.URL = "https://" + mitm
	cfg.HandshakeTimeout = 2 * time.Second
	if c, err := relayclient.Dial(context.Background(), cfg); err == nil {
		c.Close()
		t.Fatal("handshake through a TLS-terminating proxy succeeded")
	}
	eventually(t, "the relay to refuse the proof", func() bool { return r.Stats().AuthFailed == 1 })
	if st := r.Stats(); st.Admitted != 0 {
		t.Errorf("stats %+v: nobody should be admitted", st)
	}
}

// Max clients: beyond it new keys are refused (and told so), a known key may return.
func TestMaxClients(t *testing.T) {
	r := startRelay(t, Config{MaxClients: 2})
	privA := newKey(t)
	a, err := relayclient.Dial(context.Background(), r.config("udp", privA))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	r.dial(t, "tls")
	for _, tr := range []string{"udp", "tls"} {
		if c, err := relayclient.Dial(context.Background(), r.config(tr, newKey(t))); !errors.Is(err, relayclient.ErrRelayFull) {
			if c != nil {
				c.Close()
			}
			t.Fatalf("third client over %s: %v, want ErrRelayFull", tr, err)
		}
	}
	// A's key again (say after moving networks) replaces A's session.
	a2, err := relayclient.Dial(context.Background(), r.config("tls", privA))
	if err != nil {
		t.Fatalf("returning client: %v", err)
	}
	defer a2.Close()
	if st := r.Stats(); st.Clients != 2 || st.Refused != 2 || st.Admitted != 3 {
		t.Errorf("stats %+v: want 2 clients, 2 refused, 3 admitted", st)
	}
}

// Frames for a key nobody connected with are dropped and counted.
func TestUnknownDestinationDropped(t *testing.T) {
	r := startRelay(t, Config{})
	for i, tr := range []string{"udp", "tls"} {
		a, _ := r.dial(t, tr)
		if err := a.Send(newKey(t).Public(), []byte("anyone?")); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the drop", func() bool { return r.Stats().DroppedUnknown == uint64(i+1) })
	}
	if st := r.Stats(); st.ForwardedPackets != 0 {
		t.Errorf("stats %+v: nothing should be forwarded", st)
	}
}
