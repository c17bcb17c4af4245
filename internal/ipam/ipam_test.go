package ipam

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
)

func TestExhaustionOnSlash29(t *testing.T) {
	p := NewPool(netip.MustParsePrefix("10.0.0.0/29"))
	var got []string
	for range 6 {
		a, err := p.Allocate()
		if err != nil {
			t.Fatalf("allocate %d: %v", len(got)+1, err)
		}
		got = append(got, a.String())
	}
	want := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("allocations = %v, want %v", got, want)
		}
	}
	if _, err := p.Allocate(); !errors.Is(err, ErrExhausted) {
		t.Fatalf("7th allocate: err = %v, want ErrExhausted", err)
	}
	if n := p.InUse(); n != 6 {
		t.Fatalf("InUse = %d, want 6", n)
	}
}

func TestReuseAfterRelease(t *testing.T) {
	p := NewPool(netip.MustParsePrefix("10.0.0.0/29"))
	a1, _ := p.Allocate()
	if _, err := p.Allocate(); err != nil {
		t.Fatal(err)
	}
	p.Release(a1)
	// The cursor has moved on: the just-released address is not handed out next.
	a3, err := p.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	if a3 == a1 {
		t.Fatalf("just-released %s handed out again immediately", a1)
	}
	// Once the rest is used up, the released address comes back.
	for range 3 {
		if _, err := p.Allocate(); err != nil {
			t.Fatal(err)
		}
	}
	last, err := p.Allocate()
	if err != nil {
		t.Fatalf("allocate after wrap: %v", err)
	}
	if last != a1 {
		t.Fatalf("after wrap got %s, want released %s", last, a1)
	}
	if _, err := p.Allocate(); !errors.Is(err, ErrExhausted) {
		t.Fatalf("err = %v, want ErrExhausted", err)
	}
}

func TestReserve(t *testing.T) {
	p := NewPool(netip.MustParsePrefix("100.64.0.0/10"))
	cases := []struct {
		addr string
		want error
	}{
		{"100.64.0.5", nil},
		{"100.64.0.5", ErrInUse},
		{"100.64.0.0", ErrOutOfRange},      // network
		{"100.127.255.255", ErrOutOfRange}, // broadcast
		{"100.128.0.1", ErrOutOfRange},
		{"10.0.0.1", ErrOutOfRange},
		{"::1", ErrOutOfRange},
		{"100.127.255.254", nil},
	}
	for _, c := range cases {
		err := p.Reserve(netip.MustParseAddr(c.addr))
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("Reserve(%s) = %v, want %v", c.addr, err, c.want)
		}
	}
	a, err := p.Allocate()
	if err != nil || a != netip.MustParseAddr("100.64.0.1") {
		t.Fatalf("Allocate = %v, %v; want 100.64.0.1", a, err)
	}
}

func TestTinyPrefixesAreEmpty(t *testing.T) {
	for _, s := range []string{"10.0.0.0/31", "10.0.0.1/32", "fd00::/64"} {
		p := NewPool(netip.MustParsePrefix(s))
		if _, err := p.Allocate(); !errors.Is(err, ErrExhausted) {
			t.Errorf("%s: Allocate err = %v, want ErrExhausted", s, err)
		}
	}
}

func TestConcurrentAllocateNoDuplicates(t *testing.T) {
	p := NewPool(netip.MustParsePrefix("10.1.0.0/22")) // 1022 hosts
	const workers, each = 16, 60
	var mu sync.Mutex
	seen := make(map[netip.Addr]int)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				a, err := p.Allocate()
				if err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
				mu.Lock()
				seen[a]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != workers*each {
		t.Fatalf("%d distinct addresses, want %d", len(seen), workers*each)
	}
	for a, n := range seen {
		if n != 1 {
			t.Fatalf("%s handed out %d times", a, n)
		}
	}
	if p.InUse() != workers*each {
		t.Fatalf("InUse = %d", p.InUse())
	}
}

// model is the obvious implementation the pool must agree with.
type model struct {
	hosts  []netip.Addr // in order
	used   map[netip.Addr]bool
	cursor int
}

func newModel(prefix netip.Prefix) *model {
	m := &model{used: make(map[netip.Addr]bool)}
	for a := prefix.Addr(); prefix.Contains(a); a = a.Next() {
		m.hosts = append(m.hosts, a)
	}
	m.hosts = m.hosts[1 : len(m.hosts)-1] // drop network and broadcast
	return m
}

func (m *model) allocate() (netip.Addr, error) {
	for i := range m.hosts {
		j := (m.cursor + i) % len(m.hosts)
		if !m.used[m.hosts[j]] {
			m.used[m.hosts[j]] = true
			m.cursor = (j + 1) % len(m.hosts)
			return m.hosts[j], nil
		}
	}
	return netip.Addr{}, ErrExhausted
}

func (m *model) inRange(a netip.Addr) bool {
	for _, h := range m.hosts {
		if h == a {
			return true
		}
	}
	return false
}

func (m *model) reserve(a netip.Addr) error {
	switch {
	case !m.inRange(a):
		return ErrOutOfRange
	case m.used[a]:
		return ErrInUse
	}
	m.used[a] = true
	return nil
}

func TestRandomisedAgainstModel(t *testing.T) {
	prefix := netip.MustParsePrefix("192.168.7.32/27") // 30 hosts: exhaustion is frequent
	p := NewPool(prefix)
	m := newModel(prefix)
	rng := rand.New(rand.NewPCG(1, 2))
	// Candidate addresses for release/reserve include the network, broadcast and
	// neighbours outside the prefix.
	var candidates []netip.Addr
	for a := netip.MustParseAddr("192.168.7.30"); a.Less(netip.MustParseAddr("192.168.7.67")); a = a.Next() {
		candidates = append(candidates, a)
	}
	for i := range 5000 {
		switch op := rng.IntN(10); {
		case op < 5:
			got, gerr := p.Allocate()
			want, werr := m.allocate()
			if got != want || !errors.Is(gerr, werr) && (gerr != nil || werr != nil) {
				t.Fatalf("op %d allocate: pool %v %v, model %v %v", i, got, gerr, want, werr)
			}
		case op < 8:
			a := candidates[rng.IntN(len(candidates))]
			p.Release(a)
			delete(m.used, a)
		default:
			a := candidates[rng.IntN(len(candidates))]
			gerr := p.Reserve(a)
			werr := m.reserve(a)
			if (gerr == nil) != (werr == nil) || werr != nil && !errors.Is(gerr, werr) {
				t.Fatalf("op %d reserve %s: pool %v, model %v", i, a, gerr, werr)
			}
		}
		if p.InUse() != len(m.used) {
			t.Fatalf("op %d: InUse %d, model %d", i, p.InUse(), len(m.used))
		}
	}
	// Drain: every remaining allocation is distinct and none is already in the model.
	seen := make(map[netip.Addr]bool)
	for a := range m.used {
		seen[a] = true
	}
	for {
		a, err := p.Allocate()
		if errors.Is(err, ErrExhausted) {
			break
		}
		if seen[a] {
			t.Fatalf("duplicate %s", a)
		}
		seen[a] = true
	}
	if len(seen) != 30 {
		t.Fatalf("drained to %d addresses, want 30", len(seen))
	}
}
