// Package paths chooses, per peer, the path WireGuard packets take — a direct address or
// the relay — from disco pings and pongs. It does no I/O and reads no clock: callers feed
// it events with the time they happened and send the disco messages it returns
// (docs/NAT-TRAVERSAL.md, "Path selection").
package paths

import (
	"cmp"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/weftmesh/weft/mesh/disco"
	"github.com/weftmesh/weft/wire"
)

// Timing of probing and path keeping.
const (
	// BurstInterval is the gap between probing rounds in a burst.
	BurstInterval = 200 * time.Millisecond
	// BurstLength is how long a full burst (new peer, punch, lost path) probes.
	BurstLength = 2 * time.Second
	// shortBurst is a later round of probing: the open-mapping round and two pings.
	shortBurst = 2*BurstInterval + time.Millisecond
	// FirstBackoff and MaxBackoff bound the gaps between bursts while nothing direct works.
	FirstBackoff = time.Second
	MaxBackoff   = 30 * time.Second
	// UpgradeInterval is how often a peer on a public direct path or the relay probes its
	// other candidates for a better path.
	UpgradeInterval = 30 * time.Second
	// ActiveWindow: a peer is active while data was sent to it this recently.
	ActiveWindow = 5 * time.Second
	// ActivePing and IdlePing are how often the current direct path is pinged.
	ActivePing = 500 * time.Millisecond
	IdlePing   = 10 * time.Second
	// DeadAfter without a pong while pinging declares the current direct path dead.
	DeadAfter = 1500 * time.Millisecond
	// TrustWindow is how long a pong vouches for a path that is not the current one.
	TrustWindow = 6500 * time.Millisecond
	// RelayPing is how often the relay path's round trip is measured while it is in use.
	RelayPing = 10 * time.Second
	// pingTimeout forgets an unanswered ping.
	pingTimeout = 5 * time.Second
	// learnedTTL forgets a learned address nothing was heard from for this long.
	learnedTTL = 2 * time.Minute
	// reflexiveTTL forgets an address peers saw us at after this long.
	reflexiveTTL = 10 * time.Minute
	// callMeMaybeEvery rate-limits bursts that a peer's call-me-maybe or ping starts.
	callMeMaybeEvery = time.Second
	// pingBackEvery rate-limits pinging an unconfirmed address back when its pings come.
	pingBackEvery = 20 * time.Millisecond
	// openedValid is how long a peer's word that its NAT lets us in (or a ping from an
	// address) allows full-TTL pings: its TTL-limited probe made an unreplied conntrack
	// entry, which Linux keeps 30 s.
	openedValid = 20 * time.Second
	// tellEvery rate-limits answering a call-me-maybe with our own Opened list when it
	// would say nothing new, so two peers cannot keep each other busy.
	tellEvery = 5 * time.Second
	// clashExpiry is how long nothing but answers goes to a peer's addresses that do not
	// answer after re-probing a lost path failed although both NATs were said open. If
	// the peer roamed, its packets to our old mapping may have left an entry on our router
	// that gives the mapping we open towards its new address a random port (and our pings
	// may keep such an entry alive on its router); Linux drops an entry 30 s after its
	// last packet, and our own clashing mapping too once we stop sending.
	clashExpiry = 32 * time.Second
)

// Birthday probing, for a peer behind a NAT that maps every destination to a new random
// port facing one that keeps one port for all ("One symmetric NAT" in
// docs/NAT-TRAVERSAL.md). The hard side opens SprayPorts mappings towards the easy side
// (one aux socket each), the easy side pings SprayPings random ports of the hard side's
// address: some ping meets an open mapping with probability 1-(1-256/64512)^1024 ≈ 98 %.
const (
	SprayPorts = 256
	SprayPings = 1024
	// sprayWindow is how long an attempt's aux sockets wait for a ping.
	sprayWindow = 3 * time.Second
	// sprayAnswerEvery rate-limits the pings one peer's Spray requests make us send.
	sprayAnswerEvery = 2 * time.Second
	// maxSprayTargets bounds the peer addresses an attempt opens mappings towards.
	maxSprayTargets = 2
	// sprayMinPort: a NAT picks random ports from 1024 up for a source port that high.
	sprayMinPort = 1024
	// sprayChunk pings leave at a time, sprayChunkGap apart: a burst of all 1024 at once
	// would overflow a router's input backlog (1000 packets on Linux) and lose pings.
	sprayChunk    = 256
	sprayChunkGap = 40 * time.Millisecond
	// maxSprayAttempts bounds the attempts running at once (each holds SprayPorts
	// sockets); peers beyond it wait for their next probing round.
	maxSprayAttempts = 2
)

// Bounds on what a peer (or a misbehaving one) can make the manager hold.
const (
	maxCandidates = 16 // from the map
	maxLearned    = 8  // learned from pings, pongs and call-me-maybe
	maxReflexive  = 8
)

// DefaultOpenTTL is the IP TTL of the first probe to a candidate: it leaves the device's own
// router, opening the mapping there, and dies before the peer's router (see "NAT traps
// handled" in docs/NAT-TRAVERSAL.md).
const DefaultOpenTTL = 2

// NAT values peers and this device report (wire.NAT* constants).
const (
	natSymmetric  = wire.NATSymmetric
	natUDPBlocked = wire.NATUDPBlocked
)

// Kind is the kind of a path.
type Kind uint8

const (
	None      Kind = iota // nothing: no direct address answered and no relay is available
	Relay                 // through the relay
	Direct                // a direct public address
	DirectLAN             // a direct address on a shared LAN
)

func (k Kind) String() string {
	switch k {
	case Relay:
		return "relay"
	case Direct:
		return "direct"
	case DirectLAN:
		return "direct lan"
	}
	return "none"
}

// Path is where a peer's packets go now.
type Path struct {
	Kind Kind
	Addr netip.AddrPort // the address of a direct path
	Aux  uint32         // a direct path from an aux socket (birthday probing); 0: the WireGuard socket
	RTT  time.Duration  // the path's last measured round trip; 0 when not measured
}

// Candidate is an address a peer may be reached at.
type Candidate struct {
	Addr netip.AddrPort
	LAN  bool // the peer's own LAN address: a path to it is "direct lan"
}

// Peer is a peer as the broker's map describes it.
type Peer struct {
	Key        wire.Key
	Candidates []Candidate
	NAT        string // what the peer reported of its NAT (a wire.NAT* value)
}

// Self is what the manager knows of this device.
type Self struct {
	// Endpoints are advertised to peers in call-me-maybe: LAN and STUN-learned addresses of
	// the WireGuard socket. Addresses peers reported seeing us at are added to them.
	Endpoints []netip.AddrPort
	NAT       string // a wire.NAT* value
	// At is when Endpoints were last measured (a STUN run). After a direct path died, only
	// addresses measured since count as ours when a peer says it opened its NAT to them.
	At time.Time
}

// Send is one disco message the caller should send.
type Send struct {
	Peer wire.Key
	To   netip.AddrPort // the destination; invalid means through the relay
	Aux  uint32         // when > 0, send from that aux socket instead of the WireGuard socket
	TTL  int            // when > 0, the IP TTL (hop limit) for this one packet
	Msg  disco.Message
}

// CandidateState describes a candidate, for status and for mapping received packets.
type CandidateState struct {
	Addr      netip.AddrPort
	Aux       uint32 // reached from that aux socket; 0: the WireGuard socket
	LAN       bool
	Learned   bool // learned from traffic, not from the map
	Confirmed bool // answered a ping and not declared dead since
	Current   bool
	RTT       time.Duration
}

// Config tunes a Manager.
type Config struct {
	// NewTxID makes ping transaction IDs; nil means disco.NewTxID. Tests inject a counter.
	NewTxID func() disco.TxID
	// OpenTTL is the TTL of the open-mapping probe; 0 means DefaultOpenTTL, negative
	// sends no such probe.
	OpenTTL int
	// RandPort picks a port for birthday probing; nil means uniformly random. Tests
	// inject a sequence.
	RandPort func() uint16
}

// Manager keeps every peer's path state. It is not safe for concurrent use: the caller
// serialises calls.
type Manager struct {
	newTxID   func() disco.TxID
	randPort  func() uint16
	nextAux   uint32 // the last aux socket ID handed out
	openTTL   int
	relay     bool
	self      Self
	now       time.Time // the latest time any input carried
	peers     map[wire.Key]*peer
	pending   map[disco.TxID]pending
	reflexive map[netip.AddrPort]time.Time // where peers saw our pings come from
	changed   map[wire.Key]bool
}

type pending struct {
	peer  wire.Key
	to    netip.AddrPort // invalid: through the relay
	aux   uint32         // sent from that aux socket
	sent  time.Time
	spray bool // a birthday ping: to is no candidate yet
}

// New returns an empty Manager.
func New(cfg Config) *Manager {
	m := &Manager{
		newTxID:   cfg.NewTxID,
		randPort:  cfg.RandPort,
		openTTL:   cfg.OpenTTL,
		peers:     map[wire.Key]*peer{},
		pending:   map[disco.TxID]pending{},
		reflexive: map[netip.AddrPort]time.Time{},
		changed:   map[wire.Key]bool{},
	}
	if m.newTxID == nil {
		m.newTxID = disco.NewTxID
	}
	if m.randPort == nil {
		m.randPort = func() uint16 { return uint16(sprayMinPort + rand.IntN(65536-sprayMinPort)) }
	}
	if m.openTTL == 0 {
		m.openTTL = DefaultOpenTTL
	}
	return m
}

func (m *Manager) at(now time.Time) {
	if now.After(m.now) {
		m.now = now
	}
}

// SetPeers makes the peer set exactly peers. New peers start with the relay (if any) and a
// burst of probes; new candidates of known peers are probed at once; peers not listed are
// forgotten.
func (m *Manager) SetPeers(peers []Peer, now time.Time) []Send {
	m.at(now)
	var out []Send
	want := make(map[wire.Key]bool, len(peers))
	for _, pp := range peers {
		want[pp.Key] = true
		p, ok := m.peers[pp.Key]
		if !ok {
			p = &peer{key: pp.Key, backoff: FirstBackoff}
			m.peers[pp.Key] = p
			p.nat = pp.NAT
			p.setCandidates(pp.Candidates, now)
			m.changed[p.key] = true
			m.startBurst(p, now, BurstLength, true)
			out = m.round(p, now, out)
			continue
		}
		p.nat = pp.NAT
		if p.setCandidates(pp.Candidates, now) {
			m.changed[p.key] = true
			if p.cur == nil {
				m.startBurst(p, now, BurstLength, true)
			} else if !p.cur.lan {
				m.startBurst(p, now, shortBurst, false)
			}
			out = m.round(p, now, out)
		}
		m.update(p, now)
	}
	for k := range m.peers {
		if !want[k] {
			delete(m.peers, k)
			m.changed[k] = true
		}
	}
	return m.startSprays(now, out)
}

// SetRelay says whether a relay is available to carry packets of peers without a
// direct path.
func (m *Manager) SetRelay(ok bool) {
	if ok == m.relay {
		return
	}
	m.relay = ok
	for _, p := range m.peers {
		if p.cur == nil {
			m.changed[p.key] = true
			if ok && !m.now.IsZero() {
				// Call-me-maybe can go now (full-TTL pings wait for the answer).
				m.startBurst(p, m.now, shortBurst, true)
			}
		}
	}
}

// SetSelf updates what the manager knows of this device.
// New endpoints are told at once to peers without a direct path, so they open their NATs
// to them.
func (m *Manager) SetSelf(s Self) {
	grew := slices.ContainsFunc(s.Endpoints, func(a netip.AddrPort) bool { return !slices.Contains(m.self.Endpoints, a) })
	m.self = Self{Endpoints: slices.Clone(s.Endpoints), NAT: s.NAT, At: s.At}
	if !grew || m.now.IsZero() {
		return
	}
	for _, p := range m.peers {
		if p.cur == nil {
			m.startBurst(p, m.now, shortBurst, true)
		}
	}
}

// Punch starts probing peer now, as the broker asks both sides of a pair to at once.
func (m *Manager) Punch(key wire.Key, now time.Time) []Send {
	m.at(now)
	p := m.peers[key]
	if p == nil {
		return nil
	}
	m.startBurst(p, now, BurstLength, true)
	return m.round(p, now, nil)
}

// Rebind re-probes every peer after this device's network changed: current direct paths
// must answer within DeadAfter or are dropped; addresses peers saw us at are forgotten.
func (m *Manager) Rebind(now time.Time) []Send {
	m.at(now)
	clear(m.reflexive)
	var out []Send
	for _, k := range m.sortedKeys() {
		p := m.peers[k]
		if p.cur != nil && p.cur.expectBy.IsZero() {
			p.cur.expectBy = now.Add(DeadAfter)
		}
		m.startBurst(p, now, BurstLength, true)
		out = m.round(p, now, out)
	}
	return out
}

// PathFailed reports that sending on peer's current direct path failed locally (no route,
// network unreachable): the path is dropped at once.
func (m *Manager) PathFailed(key wire.Key, now time.Time) []Send {
	m.at(now)
	p := m.peers[key]
	if p == nil || p.cur == nil {
		return nil
	}
	m.lose(p, now)
	return m.round(p, now, nil)
}

// DataSent records that WireGuard sent packets to peer at time at: while data flows the
// current direct path is pinged every ActivePing, so a black hole is noticed within DeadAfter.
func (m *Manager) DataSent(key wire.Key, at time.Time) {
	p := m.peers[key]
	if p == nil || !at.After(p.dataAt) {
		return
	}
	p.dataAt = at
}

// Tick does what is due at now: probing rounds, pings on current paths, declaring silent
// paths dead. Call it every few tens of milliseconds while Busy, else about once a second.
func (m *Manager) Tick(now time.Time) []Send {
	m.at(now)
	for tx, pd := range m.pending {
		if now.Sub(pd.sent) > pingTimeout {
			delete(m.pending, tx)
		}
	}
	for a, t := range m.reflexive {
		if now.Sub(t) > reflexiveTTL {
			delete(m.reflexive, a)
		}
	}
	var out []Send
	for _, k := range m.sortedKeys() {
		out = m.tickPeer(m.peers[k], now, out)
	}
	return m.startSprays(now, out)
}

func (m *Manager) tickPeer(p *peer, now time.Time, out []Send) []Send {
	if p.expireLearned(now) {
		m.changed[p.key] = true
	}
	if len(p.sprayIDs) > 0 && !now.Before(p.sprayUntil) {
		p.sprayIDs = nil // the attempt's unanswered aux sockets close
	}
	out = m.sprayChunk(p, now, out)
	if c := p.cur; c != nil && !c.expectBy.IsZero() && !now.Before(c.expectBy) {
		m.lose(p, now)
	}
	if c := p.cur; c != nil {
		interval := IdlePing
		if p.active(now) || !c.expectBy.IsZero() {
			interval = ActivePing
		}
		if now.Sub(c.lastPing) >= interval {
			out = m.ping(p, c, now, 0, out)
		}
	} else if m.relay && now.Sub(p.lastRelayPing) >= RelayPing {
		out = m.pingRelay(p, now, out)
	}
	if !p.nextRound.IsZero() && !now.Before(p.nextRound) {
		out = m.round(p, now, out)
	}
	m.update(p, now)
	return out
}

// HandlePing answers a ping from peer that arrived from via (invalid: through the relay),
// learns via as an address of the peer, and probes it back.
func (m *Manager) HandlePing(key wire.Key, via netip.AddrPort, tx disco.TxID, now time.Time) []Send {
	return m.HandlePingAux(key, via, 0, tx, now)
}

// HandlePingAux is HandlePing for a ping that arrived on aux socket aux (0: the
// WireGuard socket); the answer leaves from the same socket.
func (m *Manager) HandlePingAux(key wire.Key, via netip.AddrPort, aux uint32, tx disco.TxID, now time.Time) []Send {
	m.at(now)
	p := m.peers[key]
	if p == nil {
		return nil
	}
	if !via.IsValid() {
		aux = 0
	}
	out := []Send{{Peer: key, To: via, Aux: aux, Msg: &disco.Pong{TxID: tx, Src: via}}}
	if !via.IsValid() {
		return out
	}
	c, added := p.learn(via, aux, now)
	if c == nil {
		return out
	}
	if added {
		m.changed[key] = true
	}
	// A ping got here from via, so our side lets packets from it in: probe it at once,
	// without the open-mapping probe (a probe sent earlier may have arrived before the
	// peer knew us, and WireGuard's first packets wait for a confirmed path).
	c.opened, c.heardAt = true, now
	if !c.confirmed && now.Sub(c.lastPing) >= pingBackEvery {
		out = m.ping(p, c, now, 0, out)
	}
	if p.cur == nil && !p.bursting(now) && now.Sub(p.lastTriggered) >= callMeMaybeEvery {
		p.lastTriggered = now
		m.startBurst(p, now, BurstLength, false)
	}
	return out
}

// HandlePong takes peer's answer to one of our pings, which arrived from via, and observed
// (where the peer saw the ping come from). A pong for no ping of ours is ignored.
func (m *Manager) HandlePong(key wire.Key, via netip.AddrPort, tx disco.TxID, observed netip.AddrPort, now time.Time) []Send {
	return m.HandlePongAux(key, via, 0, tx, observed, now)
}

// HandlePongAux is HandlePong for a pong that arrived on aux socket aux (0: the
// WireGuard socket).
func (m *Manager) HandlePongAux(key wire.Key, via netip.AddrPort, aux uint32, tx disco.TxID, observed netip.AddrPort, now time.Time) []Send {
	m.at(now)
	pd, ok := m.pending[tx]
	if !ok || pd.peer != key {
		return nil
	}
	delete(m.pending, tx)
	p := m.peers[key]
	if p == nil {
		return nil
	}
	rtt := max(now.Sub(pd.sent), 0)
	if !pd.to.IsValid() {
		p.relayRTT = rtt
		return nil
	}
	if observed.IsValid() && pd.aux == 0 {
		// (An aux socket's mapping is no address of the WireGuard socket.)
		m.learnReflexive(observed, now)
	}
	c := p.find(pd.to, pd.aux)
	if c == nil && pd.spray {
		// A birthday ping met one of the peer's mappings.
		var added bool
		if c, added = p.learn(pd.to, 0, now); added {
			m.changed[key] = true
		}
	}
	if c == nil {
		return nil
	}
	c.rtt, c.lastPong, c.confirmed, c.expectBy = rtt, now, true, time.Time{}
	c.lastSeen = now
	var out []Send
	if via.IsValid() && via != pd.to {
		// The answer came from elsewhere than we asked (the peer's NAT maps per
		// destination): that address is the peer's too.
		if vc, added := p.learn(via, aux, now); added {
			m.changed[key] = true
			vc.opened, vc.heardAt = true, now
			out = m.ping(p, vc, now, 0, out)
		}
	}
	m.update(p, now)
	return out
}

// HandleCallMeMaybe takes the endpoints peer says it can be reached at and probes them:
// the peer is probing us at the same moment. opened are the addresses of ours the peer
// opened its NAT towards: once one of them is known to be ours, full-TTL pings to the
// peer cannot trip its NAT. The answer tells the peer which of its addresses we opened
// towards, unless it already knows.
func (m *Manager) HandleCallMeMaybe(key wire.Key, endpoints, opened []netip.AddrPort, now time.Time) []Send {
	m.at(now)
	p := m.peers[key]
	if p == nil {
		return nil
	}
	for _, ep := range endpoints {
		if _, added := p.learn(ep, 0, now); added {
			m.changed[key] = true
		}
	}
	nowOpened := false
	if len(opened) > 0 {
		was := m.peerOpened(p, now)
		p.opened, p.openedAt = slices.Clone(opened[:min(len(opened), disco.MaxEndpoints)]), now
		nowOpened = !was && m.peerOpened(p, now)
	}
	tell := m.mustTell(p, now)
	if !tell && !nowOpened && now.Sub(p.lastTriggered) < callMeMaybeEvery && p.bursting(now) {
		return nil
	}
	p.lastTriggered = now
	length := BurstLength
	if p.cur != nil {
		length = shortBurst
	}
	m.startBurst(p, now, length, tell)
	return m.round(p, now, nil)
}

// ownCurrent reports whether one of addrs is an address of ours known to be current for
// p: measured (STUN) or seen by a peer since p's last direct path died.
//
// Before the first direct path and before any measurement of our public address (STUN
// needs the map's server list), the peer's list comes from the broker's map — where the
// broker saw us — and is taken as is.
func (m *Manager) ownCurrent(p *peer, addrs []netip.AddrPort) bool {
	if p.lostAt.IsZero() && m.self.At.IsZero() && len(m.reflexive) == 0 && len(addrs) > 0 {
		return true
	}
	for _, a := range addrs {
		a = unmap(a)
		if t, ok := m.reflexive[a]; ok && !t.Before(p.lostAt) {
			return true
		}
		if slices.Contains(m.self.Endpoints, a) && (p.lostAt.IsZero() || !m.self.At.Before(p.lostAt)) {
			return true
		}
	}
	return false
}

// peerOpened reports whether the peer said lately that its NAT lets in one of our
// current addresses.
func (m *Manager) peerOpened(p *peer, now time.Time) bool {
	return !p.openedAt.IsZero() && now.Sub(p.openedAt) < openedValid && m.ownCurrent(p, p.opened)
}

// mustTell reports whether the peer should hear (call-me-maybe) which of its addresses we
// opened towards: one of them is new to it, or it last heard long ago.
func (m *Manager) mustTell(p *peer, now time.Time) bool {
	if p.toldAt.IsZero() || now.Sub(p.toldAt) >= tellEvery {
		return true
	}
	for _, c := range p.cands {
		if !c.lan && c.aux == 0 && !m.quiet(p, c, now) && !slices.Contains(p.told, c.addr) {
			return true
		}
	}
	return false
}

// mayPing reports whether c may get a full-TTL ping. A full-TTL packet that reaches the
// peer's NAT before the peer opened its own mapping towards us can make a Linux router
// with no input filter remap the peer's later packets to us ("NAT traps handled" in
// docs/NAT-TRAVERSAL.md). So an address that has not answered is pinged only once we know
// the peer's NAT lets us in: a ping came from it, or the peer said it opened its mapping
// towards an address of ours that is current. No NAT at the peer (or a port mapping on its
// gateway: openNAT), a LAN address, or no relay to coordinate through (and no TTL-limited
// probes) leave the plain timing.
//
// After a direct path died, even that waits clashExpiry (the peer's word may predate its
// router's clash entry); a ping from the address still gets pinged back.
func (m *Manager) mayPing(p *peer, c *cand, now time.Time) bool {
	switch {
	case c.confirmed, c.lan, openNAT(p.nat), m.openTTL < 0, !m.relay:
		return true
	case !c.heardAt.IsZero() && now.Sub(c.heardAt) < openedValid:
		return true
	case m.quiet(p, c, now):
		return false
	}
	return m.peerOpened(p, now)
}

// letIn reports whether we know the peer's NAT lets our packets to c in: a ping came from
// c, or the peer said so.
func (m *Manager) letIn(p *peer, c *cand, now time.Time) bool {
	if !c.heardAt.IsZero() && now.Sub(c.heardAt) < openedValid {
		return true
	}
	return !m.quiet(p, c, now) && m.peerOpened(p, now)
}

// quiet reports whether c must get nothing, not even a TTL-limited probe, for now: p's
// direct path died less than clashExpiry ago.
func (m *Manager) quiet(p *peer, c *cand, now time.Time) bool {
	return now.Before(p.quietUntil) && !c.confirmed && !c.lan && !openNAT(p.nat) && m.relay && m.openTTL > 0
}

// openNAT reports whether a peer's NAT lets unsolicited packets in: it has none, or its
// gateway forwards a public port to its socket (PCP, NAT-PMP), which then answers from
// that address without any mapping of its own to clash with.
func openNAT(nat string) bool { return nat == wire.NATNone || nat == wire.NATMapped }

// Path is where peer's packets go now.
func (m *Manager) Path(key wire.Key) Path {
	if p := m.peers[key]; p != nil {
		return m.path(p)
	}
	return Path{}
}

func (m *Manager) path(p *peer) Path {
	switch {
	case p.cur != nil:
		k := Direct
		if p.cur.lan {
			k = DirectLAN
		}
		return Path{Kind: k, Addr: p.cur.addr, Aux: p.cur.aux, RTT: p.cur.rtt}
	case m.relay:
		return Path{Kind: Relay, RTT: p.relayRTT}
	}
	return Path{}
}

// Reason says why peer has no direct path ("" when it has one).
func (m *Manager) Reason(key wire.Key) string {
	p := m.peers[key]
	if p == nil || p.cur != nil {
		return ""
	}
	selfSym, peerSym := m.self.NAT == natSymmetric, p.nat == natSymmetric
	switch {
	case m.self.NAT == natUDPBlocked:
		return "UDP blocked here"
	case !p.lostAt.IsZero() && p.bursting(m.now):
		return "direct path stopped answering; probing again"
	case !p.probed:
		return "still probing"
	case len(p.cands) == 0:
		return "no known address for the peer"
	case selfSym && peerSym:
		return "both behind symmetric NAT"
	case peerSym:
		return "peer behind symmetric NAT"
	case selfSym:
		return "behind symmetric NAT here"
	}
	return "no direct path answered"
}

// Candidates describes peer's candidates, map ones first.
func (m *Manager) Candidates(key wire.Key) []CandidateState {
	p := m.peers[key]
	if p == nil {
		return nil
	}
	out := make([]CandidateState, 0, len(p.cands))
	for _, c := range p.cands {
		out = append(out, CandidateState{Addr: c.addr, Aux: c.aux, LAN: c.lan, Learned: c.learned,
			Confirmed: c.confirmed, Current: c == p.cur, RTT: c.rtt})
	}
	return out
}

// Reflexive lists the addresses peers saw this device's pings come from (its public
// mappings as they really are), most recent first: for the broker.
func (m *Manager) Reflexive() []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(m.reflexive))
	for a := range m.reflexive {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b netip.AddrPort) int {
		return cmp.Or(m.reflexive[b].Compare(m.reflexive[a]), a.Compare(b))
	})
	return out
}

// TakeChanged returns the peers whose path or candidate set changed (or that were added or
// removed) since the last call.
func (m *Manager) TakeChanged() []wire.Key {
	if len(m.changed) == 0 {
		return nil
	}
	out := make([]wire.Key, 0, len(m.changed))
	for k := range m.changed {
		out = append(out, k)
	}
	clear(m.changed)
	slices.SortFunc(out, compareKeys)
	return out
}

// Busy reports whether anything is due soon: a burst, a path being checked, data flowing,
// a ping awaiting its pong. While it is not, ticking once a second is enough.
func (m *Manager) Busy() bool {
	if len(m.pending) > 0 {
		return true
	}
	for _, p := range m.peers {
		if p.bursting(m.now) || p.active(m.now) || (p.cur != nil && !p.cur.expectBy.IsZero()) || len(p.sprayIDs) > 0 || len(p.sprayQueue) > 0 {
			return true
		}
	}
	return false
}

// startBurst probes p every BurstInterval for length from now. withCall also asks the peer
// (through the relay) to probe us at the same time. The first round opens our own NAT
// mappings with TTL-limited probes; real pings follow a round later, by when the peer has
// opened its own.
func (m *Manager) startBurst(p *peer, now time.Time, length time.Duration, withCall bool) {
	if !p.bursting(now) {
		p.burstStart = now
	}
	if end := now.Add(length); end.After(p.burstUntil) {
		p.burstUntil = end
	}
	p.nextRound = now
	p.callPending = p.callPending || withCall
}

// round sends one probing round to p and schedules the next.
func (m *Manager) round(p *peer, now time.Time, out []Send) []Send {
	if !p.roundsOf.Equal(p.burstStart) {
		p.roundsOf, p.fullTried = p.burstStart, false
		// The first round of a burst re-opens our mappings towards every candidate that
		// does not answer yet: they may have expired since the last burst.
		for _, c := range p.cands {
			if !c.confirmed {
				c.opened = false
			}
		}
	}
	p.lastRound = now
	for _, c := range p.cands {
		if c == p.cur && now.Sub(c.lastPing) < BurstInterval/2 {
			continue
		}
		switch {
		case m.mayPing(p, c, now) && (c.opened || c.confirmed || m.openTTL <= 0 || m.letIn(p, c, now)):
			// With the peer's word that its NAT lets us in, the ping itself opens our
			// mapping in time for the answer: no TTL-limited probe first.
			if !c.confirmed && m.letIn(p, c, now) {
				p.fullTried = true
			}
			c.opened = true
			out = m.ping(p, c, now, 0, out)
		case !c.opened && !c.confirmed && !m.quiet(p, c, now):
			c.opened = true
			out = m.ping(p, c, now, m.openTTL, out)
		}
	}
	// After the probes: call-me-maybe says which of the peer's addresses our NAT now
	// lets in (a packet went to them lately), so the peer may ping them.
	if p.callPending && m.relay {
		var opened []netip.AddrPort
		for _, c := range p.cands {
			if !c.lan && c.aux == 0 && !c.sentAt.IsZero() && now.Sub(c.sentAt) < openedValid && len(opened) < disco.MaxEndpoints {
				opened = append(opened, c.addr)
			}
		}
		p.told, p.toldAt = opened, now
		out = append(out, Send{Peer: p.key, Msg: &disco.CallMeMaybe{Endpoints: m.advertised(), Opened: opened}})
		out = m.pingRelay(p, now, out)
		p.callPending = false
	}
	if next := now.Add(BurstInterval); next.Before(p.burstUntil) {
		p.nextRound = next
		return out
	}
	p.probed = true
	switch {
	case p.cur == nil:
		// The burst is over and nothing direct answered: try again later, less often,
		// asking the peer to probe at the same time; at the latest when the quiet after
		// a lost path ends.
		next := now.Add(p.backoff)
		if p.fullTried && !p.lostAt.IsZero() && !now.Before(p.quietUntil) {
			// Re-probing a lost path failed although the peer said its NAT lets us
			// in: a clash entry may stand in the way (see clashExpiry). Go quiet
			// until it expired, then try again.
			p.quietUntil = now.Add(clashExpiry)
			next = p.quietUntil
		}
		m.schedule(p, next)
		p.backoff = min(p.backoff*2, MaxBackoff)
		p.callPending = true
	case p.cur.lan:
		p.nextRound = time.Time{}
	default:
		m.schedule(p, now.Add(UpgradeInterval))
	}
	return out
}

// startSprays starts birthday attempts for the peers that are due one, longest waiting
// first, as long as fewer than maxSprayAttempts run.
func (m *Manager) startSprays(now time.Time, out []Send) []Send {
	running := 0
	var due []*peer
	for _, k := range m.sortedKeys() {
		p := m.peers[k]
		switch {
		case len(p.sprayIDs) > 0:
			running++
		case m.sprayable(p, now):
			due = append(due, p)
		}
	}
	slices.SortStableFunc(due, func(a, b *peer) int { return a.sprayUntil.Compare(b.sprayUntil) })
	for _, p := range due {
		if running >= maxSprayAttempts {
			break
		}
		var started bool
		if out, started = m.spray(p, now, out); started {
			running++
		}
	}
	return out
}

// spray starts a birthday attempt when this device is the hard side of a pair that has no
// direct path: behind a NAT that maps every destination to a new random port, facing a
// peer whose NAT keeps one port for every destination (and filters by address and port,
// else its plain pings would have found us). From SprayPorts new aux sockets it opens as
// many mappings towards the peer's public address with TTL-limited probes (they die
// before the peer's router, whose conntrack they would confuse), then asks the peer,
// through the relay, to ping random ports of our public address.
func (m *Manager) spray(p *peer, now time.Time, out []Send) ([]Send, bool) {
	ip := m.publicIPv4()
	if !ip.IsValid() {
		return out, false
	}
	var targets []netip.AddrPort
	for _, c := range p.cands {
		if c.aux == 0 && !c.lan && c.addr.Addr().Is4() && len(targets) < maxSprayTargets {
			targets = append(targets, c.addr)
		}
	}
	if len(targets) == 0 {
		return out, false
	}
	ttl := max(m.openTTL, 0)
	p.sprayIDs = make([]uint32, 0, SprayPorts)
	for range SprayPorts {
		m.nextAux++
		if m.nextAux == 0 {
			m.nextAux++
		}
		p.sprayIDs = append(p.sprayIDs, m.nextAux)
		for _, t := range targets {
			out = append(out, Send{Peer: p.key, To: t, Aux: m.nextAux, TTL: ttl, Msg: &disco.Ping{TxID: m.newTxID()}})
		}
	}
	p.sprayUntil = now.Add(sprayWindow)
	// The next attempt waits a while after this one's sockets close, which also gives
	// other peers waiting for a turn (maxSprayAttempts) theirs.
	p.sprayNext = p.sprayUntil.Add(max(sprayWindow, p.backoff))
	return append(out, Send{Peer: p.key, Msg: &disco.Spray{Addr: ip, Ports: SprayPorts}}), true
}

// sprayable reports whether a birthday attempt towards p is due now.
func (m *Manager) sprayable(p *peer, now time.Time) bool {
	return p.cur == nil && m.relay && m.self.NAT == natSymmetric && p.nat == wire.NATEasy && !now.Before(p.sprayNext)
}

// publicIPv4 is this device's public IPv4 address as STUN or peers saw it.
func (m *Manager) publicIPv4() netip.Addr {
	for _, a := range append(slices.Clone(m.self.Endpoints), m.Reflexive()...) {
		if ip := a.Addr(); ip.Is4() && ip.IsGlobalUnicast() && !lanAddr(ip) {
			return ip
		}
	}
	return netip.Addr{}
}

// HandleSpray answers a peer's request for birthday probing (see maybeSpray): pings to
// SprayPings random ports of its address, from the WireGuard socket. Only a peer without
// a direct path gets them, at most every sprayAnswerEvery, and only towards an address
// the peer is known at — no peer can aim them at someone else. Behind a NAT that maps per
// destination ourselves, or without UDP, the pings could not meet anything: none go.
func (m *Manager) HandleSpray(key wire.Key, s *disco.Spray, now time.Time) []Send {
	m.at(now)
	p := m.peers[key]
	if p == nil || p.cur != nil || m.self.NAT == natSymmetric || m.self.NAT == natUDPBlocked ||
		(!p.sprayedAt.IsZero() && now.Sub(p.sprayedAt) < sprayAnswerEvery) {
		return nil
	}
	if !slices.ContainsFunc(p.cands, func(c *cand) bool { return c.aux == 0 && !c.lan && c.addr.Addr() == s.Addr }) {
		return nil
	}
	p.sprayedAt = now
	seen := make(map[uint16]bool, SprayPings)
	p.sprayQueue = p.sprayQueue[:0]
	for tries := 0; len(p.sprayQueue) < SprayPings && tries < 4*SprayPings; tries++ {
		port := m.randPort()
		if port < sprayMinPort || seen[port] {
			continue
		}
		seen[port] = true
		p.sprayQueue = append(p.sprayQueue, netip.AddrPortFrom(s.Addr, port))
	}
	p.sprayChunkAt = time.Time{}
	return m.sprayChunk(p, now, nil)
}

// sprayChunk sends the next sprayChunk pings of p's spray queue, if sprayChunkGap passed
// since the last; a direct path found meanwhile ends the spray.
func (m *Manager) sprayChunk(p *peer, now time.Time, out []Send) []Send {
	if p.cur != nil {
		p.sprayQueue = nil
	}
	if len(p.sprayQueue) == 0 || now.Sub(p.sprayChunkAt) < sprayChunkGap {
		return out
	}
	p.sprayChunkAt = now
	n := min(sprayChunk, len(p.sprayQueue))
	for _, to := range p.sprayQueue[:n] {
		tx := m.newTxID()
		m.pending[tx] = pending{peer: p.key, to: to, sent: now, spray: true}
		out = append(out, Send{Peer: p.key, To: to, Msg: &disco.Ping{TxID: tx}})
	}
	p.sprayQueue = p.sprayQueue[n:]
	return out
}

// AuxSockets lists the aux sockets the caller must keep open, with the peer each is for:
// those of running birthday attempts and those a peer's candidate is reached from. Close
// the others.
func (m *Manager) AuxSockets() map[uint32]wire.Key {
	out := map[uint32]wire.Key{}
	for k, p := range m.peers {
		for _, id := range p.sprayIDs {
			out[id] = k
		}
		for _, c := range p.cands {
			if c.aux != 0 {
				out[c.aux] = k
			}
		}
	}
	return out
}

// schedule plans a short burst at t.
func (m *Manager) schedule(p *peer, t time.Time) {
	p.nextRound, p.burstStart, p.burstUntil = t, t, t.Add(shortBurst)
}

// advertised is what call-me-maybe tells peers: our endpoints and where peers saw us.
func (m *Manager) advertised() []netip.AddrPort {
	out := slices.Clone(m.self.Endpoints)
	for _, a := range m.Reflexive() {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if len(out) > disco.MaxEndpoints {
		out = out[:disco.MaxEndpoints]
	}
	return out
}

func (m *Manager) ping(p *peer, c *cand, now time.Time, ttl int, out []Send) []Send {
	tx := m.newTxID()
	m.pending[tx] = pending{peer: p.key, to: c.addr, aux: c.aux, sent: now}
	c.lastPing, c.sentAt = now, now
	if c == p.cur && c.expectBy.IsZero() {
		// Pinging continuously (data flowing), the last pong is the reference: a black
		// hole is noticed DeadAfter after the last answer. After a quiet spell, the
		// path gets DeadAfter from this ping.
		if now.Sub(c.lastPong) <= ActivePing+BurstInterval {
			c.expectBy = c.lastPong.Add(DeadAfter)
		} else {
			c.expectBy = now.Add(DeadAfter)
		}
	}
	return append(out, Send{Peer: p.key, To: c.addr, Aux: c.aux, TTL: ttl, Msg: &disco.Ping{TxID: tx}})
}

func (m *Manager) pingRelay(p *peer, now time.Time, out []Send) []Send {
	tx := m.newTxID()
	m.pending[tx] = pending{peer: p.key, sent: now}
	p.lastRelayPing = now
	return append(out, Send{Peer: p.key, Msg: &disco.Ping{TxID: tx}})
}

// lose declares p's current direct path dead: packets fall back to the relay (or another
// fresh direct path) at once, and a burst looks for a new one.
func (m *Manager) lose(p *peer, now time.Time) {
	c := p.cur
	c.confirmed, c.expectBy = false, time.Time{}
	p.cur = nil
	p.lostAt, p.lostLastPong = now, c.lastPong
	p.backoff = FirstBackoff
	// What the peer said of its NAT, and pings heard, predate the loss.
	p.openedAt = time.Time{}
	// Our own mappings may be gone too (we may have moved): open them again.
	for _, x := range p.cands {
		x.heardAt = time.Time{}
		if !x.confirmed {
			x.opened = false
		}
	}
	m.changed[p.key] = true
	m.startBurst(p, now, BurstLength, true)
	m.update(p, now)
}

// update picks p's best path and records a change. A better path replaces the current one
// only once it answered (no drop), and within a class only for a clear RTT gain.
func (m *Manager) update(p *peer, now time.Time) {
	old := m.path(p)
	var best *cand
	for _, c := range p.cands {
		if !c.confirmed || (c != p.cur && now.Sub(c.lastPong) > TrustWindow) {
			continue
		}
		if !p.lostAt.IsZero() && !c.lastPong.After(p.lostLastPong) {
			// Not heard from since the dead path last answered: no better evidence
			// (after a roam, every address of the old network looks like this).
			continue
		}
		if best == nil || c.better(best) {
			best = c
		}
	}
	switch {
	case best == nil || best == p.cur:
	case p.cur == nil, best.lan && !p.cur.lan, best.lan == p.cur.lan && clearlyFaster(best.rtt, p.cur.rtt):
		p.cur = best
		best.expectBy = time.Time{}
		p.lostAt = time.Time{}
		p.backoff = FirstBackoff
	}
	if p.cur != nil && p.nextRound.IsZero() && !p.cur.lan {
		m.schedule(p, now.Add(UpgradeInterval))
	}
	if nw := m.path(p); nw.Kind != old.Kind || nw.Addr != old.Addr {
		m.changed[p.key] = true
	}
}

// clearlyFaster is the hysteresis within a class: a fifth less and at least a millisecond.
func clearlyFaster(a, b time.Duration) bool {
	return a < b-b/5 && b-a >= time.Millisecond
}

func (m *Manager) learnReflexive(a netip.AddrPort, now time.Time) {
	if _, ok := m.reflexive[a]; !ok && len(m.reflexive) >= maxReflexive {
		var oldest netip.AddrPort
		for x, t := range m.reflexive {
			if !oldest.IsValid() || t.Before(m.reflexive[oldest]) {
				oldest = x
			}
		}
		delete(m.reflexive, oldest)
	}
	m.reflexive[a] = now
}

func (m *Manager) sortedKeys() []wire.Key {
	keys := make([]wire.Key, 0, len(m.peers))
	for k := range m.peers {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	return keys
}

func compareKeys(a, b wire.Key) int {
	for i := range a {
		if c := cmp.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}
