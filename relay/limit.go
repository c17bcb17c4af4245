package relay

import (
	"net/netip"
	"sync"
	"time"
)

// bucket is a token bucket of bytes. The zero value lets nothing through until init.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // bytes per nanosecond; guarded by mu like the rest
	burst  float64
	tokens float64
	at     int64 // when tokens was last brought up to date
}

func (b *bucket) init(rate, burst, now int64) {
	b.mu.Lock()
	b.rate = float64(rate) / float64(time.Second)
	b.burst = float64(burst)
	b.tokens = b.burst
	b.at = now
	b.mu.Unlock()
}

// take spends n bytes if the bucket holds them.
func (b *bucket) take(n int, now int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now > b.at {
		b.tokens = min(b.burst, b.tokens+float64(now-b.at)*b.rate)
		b.at = now
	}
	if b.tokens < float64(n) {
		return false
	}
	b.tokens -= float64(n)
	return true
}

// Handshake messages (hello and auth) per source: helloBurst at once, then helloRate per
// second. IPv6 sources count per /64, since one host usually has all of it.
const (
	helloBurst = 20
	helloRate  = 10
	maxSources = 1 << 16 // sources tracked; when all are busy new ones are refused
)

// ipLimiter bounds the handshake messages each source may make the relay answer or
// spend a key agreement on.
type ipLimiter struct {
	burst float64
	rate  float64 // tokens per nanosecond

	mu      sync.Mutex
	sources map[netip.Addr]*ipBucket // guarded by mu
}

type ipBucket struct {
	tokens float64
	at     int64
}

func newIPLimiter(burst, perSecond float64) *ipLimiter {
	return &ipLimiter{burst: burst, rate: perSecond / float64(time.Second), sources: make(map[netip.Addr]*ipBucket)}
}

func sourceOf(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// allow takes one token for ip's source.
func (l *ipLimiter) allow(ip netip.Addr, now int64) bool {
	src := sourceOf(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.sources[src]
	if b == nil {
		if len(l.sources) >= maxSources {
			l.sweepLocked(now)
			if len(l.sources) >= maxSources {
				return false
			}
		}
		b = &ipBucket{tokens: l.burst, at: now}
		l.sources[src] = b
	}
	b.tokens = min(l.burst, b.tokens+float64(now-b.at)*l.rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *ipLimiter) sweep(now int64) {
	l.mu.Lock()
	l.sweepLocked(now)
	l.mu.Unlock()
}

// sweepLocked forgets sources whose bucket has refilled: they behave like new ones.
func (l *ipLimiter) sweepLocked(now int64) {
	for k, b := range l.sources {
		if b.tokens+float64(now-b.at)*l.rate >= l.burst {
			delete(l.sources, k)
		}
	}
}
