package relayclient

import (
	"testing"
	"time"
)

// liveSim drives a liveness machine with a simulated clock and relay: the relay answers
// each ping after rtt while up, and a peer answers each send after rtt while echo is set
// and the relay is up. It steps the machine at every event, as the monitor does (timer,
// pongs, and sends while armed).
type liveSim struct {
	t     *testing.T
	l     *liveness
	start time.Time
	now   time.Time
	rtt   time.Duration

	up      func(time.Time) bool // the relay forwards and answers at this time
	echo    bool                 // the peer answers every send
	sendGap time.Duration        // 0: nothing is sent

	heard    time.Time
	arrivals []time.Time // answers on their way
	nextSend time.Time
	unswept  time.Time // first send since the machine last asked; zero: none
	pings    []time.Duration
	dead     time.Duration // when the session was given up, since start; 0: not
}

func newLiveSim(t *testing.T, tls bool) *liveSim {
	start := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	s := &liveSim{t: t, start: start, now: start, rtt: 20 * time.Millisecond, up: func(time.Time) bool { return true }}
	s.l = newLiveness(start, DefaultKeepalive, tls)
	return s
}

func (s *liveSim) run(d time.Duration) {
	end := s.now.Add(d)
	next := s.now
	if s.sendGap > 0 && s.nextSend.IsZero() {
		s.nextSend = s.now
	}
	for s.dead == 0 {
		at := next
		if s.sendGap > 0 {
			at = earliest(at, s.nextSend)
		}
		for _, a := range s.arrivals {
			at = earliest(at, a)
		}
		if at.After(end) {
			s.now = end
			return
		}
		s.now = at
		kept := s.arrivals[:0]
		for _, a := range s.arrivals {
			if a.After(s.now) {
				kept = append(kept, a)
			} else {
				s.heard = later(s.heard, a)
				s.l.setRTT(s.rtt)
			}
		}
		s.arrivals = kept
		if s.sendGap > 0 && !s.nextSend.After(s.now) {
			if s.unswept.IsZero() {
				s.unswept = s.now
			}
			if s.echo && s.up(s.now) {
				s.arrivals = append(s.arrivals, s.now.Add(s.rtt))
			}
			s.nextSend = s.now.Add(s.sendGap)
		}
		ping, dead, n := s.l.step(s.now, s.heard, func() time.Time {
			t := s.unswept
			s.unswept = time.Time{}
			return t
		})
		if dead {
			s.dead = s.now.Sub(s.start)
			return
		}
		if ping {
			s.pings = append(s.pings, s.now.Sub(s.start))
			if s.up(s.now) {
				s.arrivals = append(s.arrivals, s.now.Add(s.rtt))
			}
		}
		if !n.After(s.now) {
			s.t.Fatalf("at %s: next step %s is not in the future", s.now.Sub(s.start), n.Sub(s.start))
		}
		next = n
	}
}

// An idle session is pinged once a keepalive interval, never more, as long as the relay
// answers.
func TestLivenessIdle(t *testing.T) {
	s := newLiveSim(t, false)
	s.run(10 * time.Minute)
	if s.dead != 0 {
		t.Fatalf("given up at %s", s.dead)
	}
	if len(s.pings) != 60 {
		t.Fatalf("%d pings in 10 minutes idle, want 60 (one per %s): %v", len(s.pings), DefaultKeepalive, s.pings)
	}
}

// An idle session whose relay went away is given up by the keepalive alone: a few pings,
// no fast probing.
func TestLivenessIdleRelayGone(t *testing.T) {
	s := newLiveSim(t, false)
	s.up = func(at time.Time) bool { return at.Sub(s.start) < 5*time.Second }
	s.run(time.Minute)
	if s.dead == 0 {
		t.Fatal("never given up")
	}
	if len(s.pings) != pingTries {
		t.Fatalf("%d pings before giving up, want %d: %v", len(s.pings), pingTries, s.pings)
	}
	if s.dead < DefaultKeepalive {
		t.Fatalf("given up at %s, before the first keepalive was due", s.dead)
	}
}

// Data flowing both ways proves the session: no pings beyond the keepalive.
func TestLivenessFlowing(t *testing.T) {
	s := newLiveSim(t, false)
	s.sendGap, s.echo = 50*time.Millisecond, true
	s.run(time.Minute)
	if s.dead != 0 {
		t.Fatalf("given up at %s", s.dead)
	}
	if len(s.pings) != 6 {
		t.Fatalf("%d pings in a minute of answered traffic, want the 6 keepalives: %v", len(s.pings), s.pings)
	}
}

// Sending while the relay stops answering (the device roamed: its frames are dropped, the
// peer's go to its old address): the session is probed and given up within quiet+probeFor
// of the last answer, long before the keepalive would notice.
func TestLivenessSendingIntoSilence(t *testing.T) {
	for _, tls := range []bool{false, true} {
		s := newLiveSim(t, tls)
		s.sendGap, s.echo = 50*time.Millisecond, true
		broke := 3*time.Second + 7*time.Millisecond
		s.up = func(at time.Time) bool { return at.Sub(s.start) < broke }
		s.run(time.Minute)
		// The first send left unanswered is at most a send gap after the break.
		limit := broke + s.sendGap + s.l.quiet + s.l.probeFor
		if s.dead == 0 || s.dead > limit {
			t.Fatalf("tls %v: given up at %s, want by %s", tls, s.dead, limit)
		}
		probes := 0
		for _, p := range s.pings {
			if p > broke {
				probes++
			}
		}
		if want := int(s.l.probeFor / probeEvery); probes < want {
			t.Fatalf("tls %v: %d probes before giving up, want %d: %v", tls, probes, want, s.pings)
		}
	}
}

// Sending to a peer that never answers (it is offline; the relay drops the frames) costs a
// probe now and then, answered, never the session.
func TestLivenessUnansweredPeer(t *testing.T) {
	s := newLiveSim(t, false)
	s.sendGap = 50 * time.Millisecond
	s.run(time.Minute)
	if s.dead != 0 {
		t.Fatalf("given up at %s", s.dead)
	}
	if max := int(time.Minute/s.l.quiet) + 6; len(s.pings) > max {
		t.Fatalf("%d pings in a minute, want at most %d", len(s.pings), max)
	}
}

// A distant relay (answers after 800 ms) is slow, not dead.
func TestLivenessDistantRelay(t *testing.T) {
	s := newLiveSim(t, false)
	s.rtt = 800 * time.Millisecond
	s.l.setRTT(s.rtt)
	s.sendGap = 50 * time.Millisecond
	s.run(time.Minute)
	if s.dead != 0 {
		t.Fatalf("given up at %s", s.dead)
	}
}
