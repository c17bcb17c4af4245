package relay

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/relayproto"
	"github.com/weftmesh/weft/wire"
)

// UDP challenges are stateless cookies, so a flood of hellos (perhaps from forged
// sources) costs the relay no memory: a cookie is its issue time, random bytes and a MAC
// under a per-process secret over those, the client's address, key and nonce. An answer
// must come back within cookieTTL from the same address; the cookie is then spent, so
// a replayed answer is refused.
const (
	cookieTTL = 10 * time.Second
	maxSpent  = 1 << 16 // spent cookies remembered until they expire
)

type cookieJar struct {
	secret [32]byte

	mu sync.Mutex
	// spent maps the issue time and random part of each cookie used within cookieTTL to
	// when it expires; guarded by mu.
	spent map[[16]byte]time.Time
}

func newCookieJar() (*cookieJar, error) {
	j := &cookieJar{spent: make(map[[16]byte]time.Time)}
	if _, err := rand.Read(j.secret[:]); err != nil {
		return nil, fmt.Errorf("generate cookie secret: %w", err)
	}
	return j, nil
}

func (j *cookieJar) mac(head []byte, addr netip.AddrPort, key wire.Key, nonce [relayproto.NonceSize]byte) []byte {
	m := hmac.New(sha256.New, j.secret[:])
	m.Write(head)
	ip := addr.Addr().Unmap().As16()
	m.Write(ip[:])
	m.Write(binary.BigEndian.AppendUint16(nil, addr.Port()))
	m.Write(key[:])
	m.Write(nonce[:])
	return m.Sum(nil)[:relayproto.CookieSize-16]
}

// issue makes the cookie for a hello from addr.
func (j *cookieJar) issue(addr netip.AddrPort, h relayproto.Hello, now time.Time) ([relayproto.CookieSize]byte, error) {
	var c [relayproto.CookieSize]byte
	binary.BigEndian.PutUint64(c[:8], uint64(now.UnixNano()))
	if _, err := rand.Read(c[8:16]); err != nil {
		return c, fmt.Errorf("generate cookie: %w", err)
	}
	copy(c[16:], j.mac(c[:16], addr, h.Client, h.Nonce))
	return c, nil
}

// valid reports whether cookie was issued by this relay, within cookieTTL, for a hello
// from addr with this key and nonce. It does not spend it.
func (j *cookieJar) valid(cookie [relayproto.CookieSize]byte, addr netip.AddrPort, key wire.Key, nonce [relayproto.NonceSize]byte, now time.Time) bool {
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(cookie[:8])))
	if age := now.Sub(issued); age < 0 || age > cookieTTL {
		return false
	}
	return hmac.Equal(cookie[16:], j.mac(cookie[:16], addr, key, nonce))
}

// spend marks a valid cookie used; false if it already was (a replay) or if too many
// are outstanding to remember another.
func (j *cookieJar) spend(cookie [relayproto.CookieSize]byte, now time.Time) bool {
	id := [16]byte(cookie[:16])
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.spent[id]; ok {
		return false
	}
	if len(j.spent) >= maxSpent {
		j.sweepLocked(now)
		if len(j.spent) >= maxSpent {
			return false
		}
	}
	j.spent[id] = now.Add(cookieTTL + time.Second)
	return true
}

func (j *cookieJar) sweep(now time.Time) {
	j.mu.Lock()
	j.sweepLocked(now)
	j.mu.Unlock()
}

func (j *cookieJar) sweepLocked(now time.Time) {
	for id, exp := range j.spent {
		if now.After(exp) {
			delete(j.spent, id)
		}
	}
}

// verify checks a client's proof of key possession over transcript t and returns the
// key it shares with the client.
func (s *Server) verify(a *relayproto.Auth, t *relayproto.Transcript) ([32]byte, bool) {
	shared, err := relayproto.SharedKey(s.priv, a.Client)
	if err != nil {
		return shared, false // a low-order public key
	}
	return shared, relayproto.Equal(relayproto.ClientMAC(shared, t), a.MAC)
}

// grant registers c (the caller set its transport fields) as the verified client of a
// and returns the reply that proves the relay's key: a Welcome, or a Refused with errFull.
func (s *Server) grant(shared [32]byte, a *relayproto.Auth, t *relayproto.Transcript, c *client) ([]byte, error) {
	c.key = a.Client
	var err error
	if c.token, err = newToken(); err != nil {
		return nil, err
	}
	if err := s.register(c); err != nil {
		s.stats.refused.Add(1)
		r := relayproto.Refused{ClientNonce: a.ClientNonce, Reason: relayproto.RefusedFull}
		r.MAC = relayproto.RefusedMAC(shared, t, r.Reason)
		return relayproto.AppendRefused(nil, r), err
	}
	s.stats.admitted.Add(1)
	w := relayproto.Welcome{
		ClientNonce: a.ClientNonce,
		Token:       c.token,
		LeaseSecs:   uint16(s.cfg.Lease / time.Second),
		Observed:    c.addr,
	}
	w.MAC = relayproto.WelcomeMAC(shared, t, &w)
	return relayproto.AppendWelcome(nil, w), nil
}
