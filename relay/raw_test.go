package relay

import (
	"context"
	"crypto/rand"
	"net"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/relayproto"
	"github.com/weftmesh/weft/internal/udpbatch"
	"github.com/weftmesh/weft/wire"
)

// rawUDP speaks the relay protocol by hand, so tests can send what a real client never
// would and see exactly what comes back.
type rawUDP struct {
	t     testing.TB
	c     *net.UDPConn
	priv  wire.Key
	relay wire.Key
	token relayproto.Token
}

func newRawUDP(t testing.TB, r *testRelay, priv wire.Key) *rawUDP {
	t.Helper()
	c, err := udpbatch.Dial(context.Background(), "udp", r.udp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawUDP{t: t, c: c, priv: priv, relay: r.PublicKey()}
}

func (u *rawUDP) send(b []byte) {
	u.t.Helper()
	if _, err := u.c.Write(b); err != nil {
		u.t.Fatal(err)
	}
}

// read returns the next datagram, failing the test if none comes within a generous
// timeout (the tests never rely on a datagram not arriving in some time).
func (u *rawUDP) read() []byte {
	u.t.Helper()
	buf := make([]byte, 1<<16)
	u.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := u.c.Read(buf)
	if err != nil {
		u.t.Fatalf("read: %v", err)
	}
	return buf[:n]
}

func (u *rawUDP) hello(pub wire.Key) ([]byte, relayproto.Hello) {
	h := relayproto.Hello{Client: pub}
	rand.Read(h.Nonce[:])
	return relayproto.AppendHello(nil, h), h
}

// challenge sends a hello claiming pub and returns the challenge to it.
func (u *rawUDP) challenge(pub wire.Key) (relayproto.Hello, relayproto.Challenge) {
	u.t.Helper()
	msg, h := u.hello(pub)
	u.send(msg)
	ch, err := relayproto.ParseChallenge(u.read())
	if err != nil || ch.ClientNonce != h.Nonce {
		u.t.Fatalf("want a challenge to our hello, got %v", err)
	}
	return h, ch
}

// auth builds the answer to ch, MACed with the key shared by macPriv and the relay.
func (u *rawUDP) auth(h relayproto.Hello, ch relayproto.Challenge, macPriv wire.Key) []byte {
	shared, err := relayproto.SharedKey(macPriv, u.relay)
	if err != nil {
		u.t.Fatal(err)
	}
	tr := relayproto.Transcript{Transport: relayproto.TransportUDP, Relay: u.relay, Client: h.Client, Nonce: h.Nonce, Cookie: ch.Cookie}
	return relayproto.AppendAuth(nil, relayproto.Auth{Client: h.Client, ClientNonce: h.Nonce, Cookie: ch.Cookie, MAC: relayproto.ClientMAC(shared, &tr)})
}

// login runs the whole handshake and keeps the token. It returns the auth message sent.
func (u *rawUDP) login() []byte {
	u.t.Helper()
	h, ch := u.challenge(u.priv.Public())
	a := u.auth(h, ch, u.priv)
	u.send(a)
	w, err := relayproto.ParseWelcome(u.read())
	if err != nil {
		u.t.Fatalf("want a welcome: %v", err)
	}
	u.token = w.Token
	return a
}

// marker sends a fresh hello and checks that the very next datagram is the challenge
// to it: proof that nothing sent before it was answered, since the relay answers one
// socket's datagrams in order.
func (u *rawUDP) marker() {
	u.t.Helper()
	msg, h := u.hello(u.priv.Public())
	u.send(msg)
	b := u.read()
	ch, err := relayproto.ParseChallenge(b)
	if err != nil || ch.ClientNonce != h.Nonce {
		u.t.Fatalf("an earlier message was answered: got %d bytes, type %#x", len(b), b[0])
	}
}

func dataFrame(token relayproto.Token, dst wire.Key, payload []byte) []byte {
	b := make([]byte, relayproto.DataHeader+len(payload))
	relayproto.PutDataHeader(b, token, dst)
	copy(b[relayproto.DataHeader:], payload)
	return b
}
