package relayclient

import "time"

// Liveness timing while data is being sent (see liveness). The keepalive (idle) timing is
// Config.Keepalive, minPingTimeout, maxPingTimeout and pingTries.
const (
	// quietUDP: a send that nothing heard from the relay follows for this long starts
	// probing. Over TLS everything waits behind the stream, so it is given longer.
	quietUDP = 500 * time.Millisecond
	quietTLS = time.Second
	// probeEvery is how often a quiet session is pinged.
	probeEvery = 250 * time.Millisecond
	// probeForUDP (probeForTLS): unanswered probing this long ends the session, or the
	// ping timeout if that is longer (a distant relay).
	probeForUDP = time.Second
	probeForTLS = 2 * time.Second
)

// liveness decides when a session pings the relay and when it gives the session up, from
// when the session sent and heard. It does no I/O and reads no clock: the session's
// monitor steps it with the time and what happened, and it says what to do.
//
// Anything heard from the relay — a forwarded frame or a pong — proves the session: it
// reached this device's current address, so the relay's binding of the session is
// current. Two regimes:
//
//   - Idle: a keepalive ping every interval, which keeps the relay's lease and the NAT
//     binding; tries pings in a row unanswered within timeout each end the session.
//     Cheap and slow: an idle session is pinged once an interval, however long it idles.
//   - Sending: a send that nothing heard follows within quiet suggests the session is
//     broken (after a roam the relay drops this device's frames from the new address and
//     sends the peers' to the old one), so the relay is pinged every probe; unanswered
//     for probeFor, the session is given up, about quiet+probeFor after the last answer.
type liveness struct {
	interval time.Duration // keepalive interval
	timeout  time.Duration // how long a keepalive ping waits for an answer
	tries    int           // keepalive pings unanswered in a row that end the session
	quiet    time.Duration // sent, heard nothing this long: probe
	probe    time.Duration // interval between probes
	probeFor time.Duration // unanswered probing this long: dead

	heard      time.Time // when anything last came from the relay
	unanswered time.Time // the first send that nothing heard has followed yet; zero: none
	probing    time.Time // when probing began; zero: not probing
	lastProbe  time.Time
	nextKA     time.Time // the next keepalive ping
	kaSent     time.Time // the unanswered keepalive ping; zero: none out
	kaTries    int       // keepalive pings sent since the last answer
}

// newLiveness starts the clock at now, as if the relay had just answered (it has: the
// handshake).
func newLiveness(now time.Time, interval time.Duration, tls bool) *liveness {
	l := &liveness{interval: interval, timeout: time.Second, tries: pingTries,
		quiet: quietUDP, probe: probeEvery, probeFor: probeForUDP, heard: now, nextKA: now.Add(interval)}
	if tls {
		l.quiet, l.probeFor = quietTLS, probeForTLS
	}
	return l
}

// setRTT adapts the ping timeout to a measured round trip.
func (l *liveness) setRTT(rtt time.Duration) {
	l.timeout = min(max(4*rtt, minPingTimeout), maxPingTimeout)
}

// step brings l to now. heard is when anything last came from the relay. sends is called
// only when l needs to know whether anything was sent since the last step with no send
// outstanding; it returns the (earliest possible) time of the first such send, or zero.
// step says whether to ping now, whether the session is dead, and when to step next at
// the latest (sooner is harmless).
func (l *liveness) step(now, heard time.Time, sends func() time.Time) (ping, dead bool, next time.Time) {
	if heard.After(l.heard) {
		l.heard = heard
		if !l.unanswered.IsZero() && !heard.Before(l.unanswered) {
			l.unanswered, l.probing = time.Time{}, time.Time{}
		}
		if !l.kaSent.IsZero() && !heard.Before(l.kaSent) {
			l.kaSent, l.kaTries = time.Time{}, 0
		}
	}
	if l.unanswered.IsZero() {
		if t := sends(); !t.IsZero() {
			// What was heard proves the session up to then; only later sends can be
			// unanswered.
			l.unanswered = later(t, l.heard)
		}
	}

	var probeNext time.Time
	if !l.unanswered.IsZero() {
		if now.Sub(l.unanswered) < l.quiet {
			probeNext = l.unanswered.Add(l.quiet)
		} else {
			if l.probing.IsZero() {
				l.probing = now
			}
			probeFor := max(l.probeFor, l.timeout)
			if now.Sub(l.probing) >= probeFor {
				return false, true, now
			}
			if l.lastProbe.Before(l.probing) || now.Sub(l.lastProbe) >= l.probe {
				ping, l.lastProbe = true, now
			}
			probeNext = earliest(l.lastProbe.Add(l.probe), l.probing.Add(probeFor))
		}
	}

	if !l.kaSent.IsZero() && now.Sub(l.kaSent) >= l.timeout {
		if l.kaTries >= l.tries {
			return false, true, now
		}
		ping, l.kaSent = true, now
		l.kaTries++
	}
	if l.kaSent.IsZero() && !now.Before(l.nextKA) {
		ping, l.kaSent, l.kaTries = true, now, 1
		l.nextKA = now.Add(l.interval)
	}
	next = l.nextKA
	if !l.kaSent.IsZero() {
		next = l.kaSent.Add(l.timeout)
	}
	if !probeNext.IsZero() {
		next = earliest(next, probeNext)
	}
	return ping, false, next
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
