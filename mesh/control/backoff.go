package control

import (
	"math/rand/v2"
	"time"
)

// backoff yields growing waits between reconnection attempts: each wait is drawn
// uniformly from [cur/2, cur] (so many devices cut off together do not return in step),
// and cur doubles up to max.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
	// rand returns a float in [0, 1); nil means math/rand/v2.
	rand func() float64
}

func (b *backoff) next() time.Duration {
	if b.cur < b.min {
		b.cur = b.min
	}
	r := rand.Float64
	if b.rand != nil {
		r = b.rand
	}
	d := b.cur/2 + time.Duration(r()*float64(b.cur/2))
	b.cur = min(b.cur*2, b.max)
	return d
}

func (b *backoff) reset() { b.cur = b.min }
