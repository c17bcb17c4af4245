package control

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	r := 0.0
	b := backoff{min: 250 * time.Millisecond, max: 2 * time.Second, rand: func() float64 { return r }}
	var low []time.Duration
	for range 6 {
		low = append(low, b.next())
	}
	want := []time.Duration{125, 250, 500, 1000, 1000, 1000}
	for i, w := range want {
		if low[i] != w*time.Millisecond {
			t.Fatalf("wait %d = %v, want %v (all: %v)", i, low[i], w*time.Millisecond, low)
		}
	}
	r = 0.999999
	if d := b.next(); d <= 1999*time.Millisecond || d > 2*time.Second {
		t.Fatalf("wait at the cap with top jitter = %v, want just under 2s", d)
	}
	b.reset()
	r = 0
	if d := b.next(); d != 125*time.Millisecond {
		t.Fatalf("after reset: %v, want 125ms", d)
	}
}
