package paths

import (
	"net/netip"
	"time"

	"github.com/weftmesh/weft/wire"
)

// peer is one peer's path state.
type peer struct {
	key   wire.Key
	nat   string
	cands []*cand // map candidates in map order, then learned ones
	cur   *cand   // the current direct path; nil: the relay, or nothing

	// Probing schedule.
	burstStart    time.Time // the current (or next scheduled) burst starts then
	burstUntil    time.Time // and sends rounds every BurstInterval until then
	lastRound     time.Time
	roundsOf      time.Time     // the burst (its start) the last round belonged to
	nextRound     time.Time     // the next probing round; zero: none scheduled
	backoff       time.Duration // the gap before the next burst if this one finds nothing
	callPending   bool          // the next round also sends call-me-maybe through the relay
	probed        bool          // the first burst has ended
	lastTriggered time.Time     // last burst the peer's ping or call-me-maybe started
	lostAt        time.Time     // when the last direct path died; zero once a new one works
	lostLastPong  time.Time     // the dead path's last pong: others must have answered since
	// opened is what the peer last said (call-me-maybe's Opened) its NAT lets in packets
	// from, at openedAt: once one is an address of ours known to be current, full-TTL
	// pings to the peer are safe.
	opened   []netip.AddrPort
	openedAt time.Time
	// quietUntil: after re-probing a lost path failed, nothing but answers goes to
	// addresses that do not answer until then (see clashExpiry).
	quietUntil time.Time
	fullTried  bool             // this burst pinged an unanswered address on the peer's word
	toldAt     time.Time        // when our last call-me-maybe with Opened went to the peer
	told       []netip.AddrPort // the addresses it said we opened towards

	dataAt        time.Time // WireGuard last sent data to the peer
	relayRTT      time.Duration
	lastRelayPing time.Time

	// Birthday probing (docs/NAT-TRAVERSAL.md, "One symmetric NAT").
	sprayIDs     []uint32         // our side is the hard one: aux sockets of the running attempt
	sprayUntil   time.Time        // they are kept open until then
	sprayNext    time.Time        // no new attempt before then
	sprayedAt    time.Time        // our side is the easy one: when we last sprayed the peer
	sprayQueue   []netip.AddrPort // the spray's pings still to send, sprayChunk at a time
	sprayChunkAt time.Time        // when the last chunk went
}

// cand is one address of a peer.
type cand struct {
	addr     netip.AddrPort
	aux      uint32 // 0: reached from the WireGuard socket; else from that aux socket
	lan      bool
	learned  bool      // from traffic or call-me-maybe, not the map
	lastSeen time.Time // learned: last heard of, for expiry

	opened    bool      // the open-mapping probe went out since the last burst started
	sentAt    time.Time // the last probe or ping went to it then
	heardAt   time.Time // a ping came from this address: the peer's NAT lets us in
	lastPing  time.Time
	lastPong  time.Time
	rtt       time.Duration
	confirmed bool      // answered, and not declared dead since
	expectBy  time.Time // the current path only: a pong must come by then
}

// better ranks candidates: LAN before public, then the shorter round trip.
func (c *cand) better(o *cand) bool {
	if c.lan != o.lan {
		return c.lan
	}
	return c.rtt < o.rtt
}

func (p *peer) active(now time.Time) bool {
	return !p.dataAt.IsZero() && now.Sub(p.dataAt) < ActiveWindow
}

func (p *peer) bursting(now time.Time) bool {
	return !now.Before(p.burstStart) && now.Before(p.burstUntil)
}

// find returns the candidate a reached from socket aux (0: the WireGuard socket).
func (p *peer) find(a netip.AddrPort, aux uint32) *cand {
	for _, c := range p.cands {
		if c.addr == a && c.aux == aux {
			return c
		}
	}
	return nil
}

// setCandidates replaces the map candidates, keeping the state of those that stay. A map
// candidate that disappears but answered stays on as a learned one. It reports whether a
// candidate was added or removed.
func (p *peer) setCandidates(cs []Candidate, now time.Time) bool {
	changed := false
	want := map[netip.AddrPort]Candidate{}
	var order []netip.AddrPort
	for _, c := range cs {
		a := unmap(c.Addr)
		if !usable(a) || len(order) >= maxCandidates {
			continue
		}
		if _, dup := want[a]; !dup {
			order = append(order, a)
		}
		c.Addr = a
		want[a] = c
	}
	var mapped, learned []*cand
	for _, c := range p.cands {
		if w, ok := want[c.addr]; ok && c.aux == 0 {
			c.lan, c.learned = w.LAN, false
			continue
		}
		if c.learned || c.confirmed || c == p.cur {
			if !c.learned {
				c.learned, c.lastSeen = true, now
			}
			learned = append(learned, c)
			continue
		}
		changed = true
	}
	for _, a := range order {
		c := p.find(a, 0)
		if c == nil {
			c = &cand{addr: a, lan: want[a].LAN}
			changed = true
		}
		mapped = append(mapped, c)
	}
	p.cands = append(mapped, learned...)
	p.trimLearned()
	return changed
}

// learn records a, reached from socket aux, as an address of the peer, heard of at now,
// and reports whether it is new. It returns nil for an address no probe should go to.
func (p *peer) learn(a netip.AddrPort, aux uint32, now time.Time) (*cand, bool) {
	a = unmap(a)
	if !usable(a) {
		return nil, false
	}
	if c := p.find(a, aux); c != nil {
		c.lastSeen = now
		return c, false
	}
	// An aux socket only ever reaches a peer's public side.
	c := &cand{addr: a, aux: aux, lan: aux == 0 && lanAddr(a.Addr()), learned: true, lastSeen: now}
	p.cands = append(p.cands, c)
	p.trimLearned()
	return c, true
}

// trimLearned drops the least recently heard of learned candidates beyond maxLearned,
// never the current path.
func (p *peer) trimLearned() {
	for {
		n := 0
		var oldest *cand
		for _, c := range p.cands {
			if !c.learned {
				continue
			}
			n++
			if c != p.cur && (oldest == nil || c.lastSeen.Before(oldest.lastSeen)) {
				oldest = c
			}
		}
		if n <= maxLearned || oldest == nil {
			return
		}
		p.remove(oldest)
	}
}

// expireLearned forgets learned candidates not heard of for learnedTTL.
func (p *peer) expireLearned(now time.Time) bool {
	removed := false
	for i := 0; i < len(p.cands); i++ {
		c := p.cands[i]
		if c.learned && c != p.cur && now.Sub(c.lastSeen) > learnedTTL && now.Sub(c.lastPong) > learnedTTL {
			p.remove(c)
			i--
			removed = true
		}
	}
	return removed
}

func (p *peer) remove(c *cand) {
	for i, x := range p.cands {
		if x == c {
			p.cands = append(p.cands[:i], p.cands[i+1:]...)
			return
		}
	}
}

func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// usable rules out addresses no probe should go to.
func usable(a netip.AddrPort) bool {
	ip := a.Addr()
	return a.IsValid() && a.Port() != 0 && !ip.IsUnspecified() && !ip.IsMulticast()
}

// lanAddr classifies a learned address: a private or link-local source means the peer is
// on a network we reach without crossing the public internet.
func lanAddr(ip netip.Addr) bool {
	return ip.IsPrivate() || ip.IsLinkLocalUnicast()
}
