package relayproto

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/weftmesh/weft/wire"
)

func key(t *testing.T) wire.Key {
	k, err := wire.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRoundTrip(t *testing.T) {
	h := Hello{Client: key(t).Public(), Nonce: [NonceSize]byte{1, 2, 3}}
	b := AppendHello(nil, h)
	if len(b) != HelloSize {
		t.Fatalf("hello is %d bytes", len(b))
	}
	if got, err := ParseHello(b); err != nil || got != h {
		t.Fatalf("hello: %v %v", got, err)
	}
	c := Challenge{ClientNonce: h.Nonce, Cookie: [CookieSize]byte{9}}
	if got, err := ParseChallenge(AppendChallenge(nil, c)); err != nil || got != c {
		t.Fatalf("challenge: %v %v", got, err)
	}
	a := Auth{Client: h.Client, ClientNonce: h.Nonce, Cookie: c.Cookie, MAC: [MACSize]byte{7}}
	if got, err := ParseAuth(AppendAuth(nil, a)); err != nil || got != a {
		t.Fatalf("auth: %v %v", got, err)
	}
	for _, obs := range []string{"192.0.2.1:4242", "[2001:db8::1]:443"} {
		w := Welcome{ClientNonce: h.Nonce, Token: Token{1, 2}, LeaseSecs: 60, Observed: netip.MustParseAddrPort(obs), MAC: [MACSize]byte{5}}
		if got, err := ParseWelcome(AppendWelcome(nil, w)); err != nil || got != w {
			t.Fatalf("welcome: %v %v", got, err)
		}
	}
	r := Refused{ClientNonce: h.Nonce, Reason: RefusedFull, MAC: [MACSize]byte{3}}
	if got, err := ParseRefused(AppendRefused(nil, r)); err != nil || got != r {
		t.Fatalf("refused: %v %v", got, err)
	}
	if echo, ok := ParsePong(AppendPong(nil, 77)); !ok || echo != 77 {
		t.Fatal("pong")
	}
	tok, echo, ok := ParsePing(AppendPing(nil, Token{4}, 78))
	if !ok || echo != 78 || !bytes.Equal(tok, []byte{4, 0, 0, 0, 0, 0, 0, 0}) {
		t.Fatal("ping")
	}
}

// Rewriting a Data frame into a Forward frame keeps the payload and names the sender.
func TestDataToForward(t *testing.T) {
	src, dst := key(t).Public(), key(t).Public()
	p := make([]byte, DataHeader+5)
	PutDataHeader(p, Token{1}, dst)
	copy(p[DataHeader:], "hello")
	tok, d, pl, ok := ParseData(p)
	if !ok || tok[0] != 1 || !bytes.Equal(d, dst[:]) || string(pl) != "hello" {
		t.Fatal("ParseData")
	}
	f := DataToForward(p, src)
	gotSrc, payload, ok := ParseForward(f)
	if !ok || gotSrc != src || string(payload) != "hello" {
		t.Fatalf("forward: %v %q", ok, payload)
	}
}

func TestParseRejects(t *testing.T) {
	h := AppendHello(nil, Hello{})
	bad := [][]byte{nil, h[:HelloSize-1], append(h, 0)}
	pad := append([]byte{}, h...)
	pad[HelloSize-1] = 1
	bad = append(bad, pad)
	ver := append([]byte{}, h...)
	ver[1] = Version + 1
	bad = append(bad, ver)
	for _, b := range bad {
		if _, err := ParseHello(b); err == nil {
			t.Errorf("hello %x accepted", b)
		}
	}
	if _, err := ParseAuth(make([]byte, AuthSize)); err == nil {
		t.Error("all-zero auth accepted")
	}
	if _, _, _, ok := ParseData(make([]byte, DataHeader-1)); ok {
		t.Error("short data frame accepted")
	}
}

// Each MAC depends on every transcript field and on its role, so no proof made for one
// purpose verifies for another.
func TestMACsSeparated(t *testing.T) {
	var shared [32]byte
	shared[0] = 1
	base := Transcript{Transport: TransportUDP, Relay: key(t).Public(), Client: key(t).Public()}
	w := Welcome{}
	seen := map[[MACSize]byte]string{}
	add := func(name string, m [MACSize]byte) {
		if prev, ok := seen[m]; ok {
			t.Errorf("%s and %s have the same MAC", name, prev)
		}
		seen[m] = name
	}
	add("client", ClientMAC(shared, &base))
	add("welcome", WelcomeMAC(shared, &base, &w))
	add("refused", RefusedMAC(shared, &base, RefusedFull))
	vary := []func(*Transcript){
		func(t *Transcript) { t.Transport = TransportTLS },
		func(t *Transcript) { t.Binding = make([]byte, BindingSize) },
		func(tr *Transcript) { tr.Relay = key(t).Public() },
		func(tr *Transcript) { tr.Client = key(t).Public() },
		func(t *Transcript) { t.Nonce[0] = 1 },
		func(t *Transcript) { t.Cookie[0] = 1 },
	}
	for i, v := range vary {
		tr := base
		v(&tr)
		add("client variant "+string(rune('0'+i)), ClientMAC(shared, &tr))
	}
	w.Token[0] = 1
	add("welcome other token", WelcomeMAC(shared, &base, &w))
	w.Observed = netip.MustParseAddrPort("192.0.2.1:1")
	add("welcome other address", WelcomeMAC(shared, &base, &w))
}
