package broker

import (
	"strconv"
	"sync"
	"time"
)

// Password attempts per account and email: a burst of passwordBurst, then one more
// every passwordRefill.
const (
	passwordBurst  = 5
	passwordRefill = 12 * time.Second
	maxBuckets     = 10000
)

// limiter is a set of token buckets by key.
type limiter struct {
	burst  float64
	refill time.Duration // time to earn one token
	now    func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket // guarded by mu
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
}

func newLimiter(burst int, refill time.Duration, now func() time.Time) *limiter {
	return &limiter{burst: float64(burst), refill: refill, now: now, buckets: make(map[string]*bucket)}
}

// Allow takes a token for key. If there is none it says how long until there is.
func (l *limiter) Allow(key string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.sweepLocked(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+float64(now.Sub(b.at))/float64(l.refill))
	b.at = now
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) * float64(l.refill))
	}
	b.tokens--
	return true, 0
}

// sweepLocked forgets buckets that have refilled: they behave like new ones.
func (l *limiter) sweepLocked(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+float64(now.Sub(b.at))/float64(l.refill) >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// retryAfter renders a wait as whole seconds, rounded up, for Retry-After.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(int((d + time.Second - 1) / time.Second))
}
