package platform

import (
	"testing"
	"time"
)

func TestBurstCoalesces(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	b := burst{quiet: 500 * time.Millisecond, maxDelay: 3 * time.Second}

	if fire, wait := b.due(at(0)); fire || wait != 0 {
		t.Fatalf("nothing pending: fire %v wait %v", fire, wait)
	}
	// A volley of events: one reaction, quiet after the last.
	for _, ms := range []int{0, 10, 20, 300} {
		b.add(at(ms))
		if fire, _ := b.due(at(ms)); fire {
			t.Fatalf("fired during the burst, at %d ms", ms)
		}
	}
	if fire, wait := b.due(at(400)); fire || wait != 400*time.Millisecond {
		t.Fatalf("at 400 ms: fire %v wait %v, want a wait of 400 ms (quiet after 300)", fire, wait)
	}
	if fire, _ := b.due(at(800)); !fire {
		t.Fatal("no reaction once the burst went quiet")
	}
	if fire, wait := b.due(at(900)); fire || wait != 0 {
		t.Fatalf("fired twice for one burst (wait %v)", wait)
	}

	// Events that never pause: the reaction comes at maxDelay after the first.
	fired := 0
	for ms := 5000; ms <= 9000; ms += 100 {
		b.add(at(ms))
		if fire, _ := b.due(at(ms)); fire {
			fired++
			if ms != 8000 {
				t.Errorf("a continuous burst fired at %d ms, want 8000 (3 s after it began)", ms)
			}
		}
	}
	if fired != 1 {
		t.Errorf("a continuous 4 s burst fired %d times by its end, want 1", fired)
	}
}
