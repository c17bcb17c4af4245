package broker

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/wire"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func key(b byte) wire.Key { return wire.Key{b} }

func TestNonces(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	s := newNonceStore(clk.Now)
	n1, exp, err := s.Issue(key(1))
	if err != nil || !exp.Equal(clk.Now().Add(nonceTTL)) || len(n1) < 22 {
		t.Fatalf("issue: %q %v %v", n1, exp, err)
	}
	n2, _, _ := s.Issue(key(1))
	if n1 == n2 {
		t.Fatal("two challenges got the same nonce")
	}
	if err := s.Take(n1, key(2)); !errors.Is(err, errNonce) {
		t.Fatalf("nonce used by another key: %v", err)
	}
	if err := s.Take(n1, key(1)); !errors.Is(err, errNonce) {
		t.Fatalf("nonce reused after a failed attempt: %v", err)
	}
	if err := s.Take(n2, key(1)); err != nil {
		t.Fatalf("good nonce: %v", err)
	}
	if err := s.Take(n2, key(1)); !errors.Is(err, errNonce) {
		t.Fatalf("replayed nonce: %v", err)
	}
	n3, _, _ := s.Issue(key(1))
	clk.Advance(nonceTTL)
	if err := s.Take(n3, key(1)); !errors.Is(err, errNonce) {
		t.Fatalf("expired nonce: %v", err)
	}
	if len(s.byNonce) != 0 || len(s.byKey) != 0 {
		t.Fatalf("leftover state %v %v", s.byNonce, s.byKey)
	}
}

func TestNoncesPerKeyAndGlobalBounds(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	s := newNonceStore(clk.Now)
	var issued []string
	for range maxNoncesByKey + 2 {
		n, _, err := s.Issue(key(1))
		if err != nil {
			t.Fatal(err)
		}
		issued = append(issued, n)
	}
	// The two oldest were dropped to make room; the rest work.
	for i, n := range issued {
		err := s.Take(n, key(1))
		if (i < 2) != (err != nil) {
			t.Fatalf("nonce %d: %v", i, err)
		}
	}

	for i := range maxNonces {
		if _, _, err := s.Issue(wire.Key{byte(i), byte(i >> 8)}); err != nil {
			t.Fatalf("issue %d: %v", i, err)
		}
	}
	if _, _, err := s.Issue(key(200)); err == nil {
		t.Fatal("issued past the global bound")
	}
	clk.Advance(nonceTTL)
	if _, _, err := s.Issue(key(200)); err != nil {
		t.Fatalf("expired nonces not swept: %v", err)
	}
	if len(s.byNonce) != 1 {
		t.Fatalf("%d nonces after sweep, want 1", len(s.byNonce))
	}
}

func TestLimiter(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := newLimiter(3, 10*time.Second, clk.Now)
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("attempt %d refused within the burst", i)
		}
	}
	ok, wait := l.Allow("a")
	if ok || wait != 10*time.Second {
		t.Fatalf("past the burst: ok %v, wait %v; want refused, 10s", ok, wait)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another key refused")
	}
	clk.Advance(5 * time.Second)
	if ok, wait := l.Allow("a"); ok || wait != 5*time.Second {
		t.Fatalf("half a token: ok %v wait %v", ok, wait)
	}
	clk.Advance(5 * time.Second)
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("refilled token refused")
	}
	if retryAfter(1500*time.Millisecond) != "2" {
		t.Fatal("retryAfter does not round up")
	}
}
