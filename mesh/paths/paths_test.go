package paths

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/weftmesh/weft/mesh/disco"
	"github.com/weftmesh/weft/wire"
)

var (
	peerA = wire.Key{1}
	peerB = wire.Key{2}
	pubA  = netip.MustParseAddrPort("203.0.113.10:51820")
	pub2A = netip.MustParseAddrPort("203.0.113.11:51820")
	lanA  = netip.MustParseAddrPort("192.168.1.10:51820")
	seenA = netip.MustParseAddrPort("203.0.113.10:40000") // a remapped port
	self1 = netip.MustParseAddrPort("198.51.100.7:51820")
	t0    = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
)

// harness drives a Manager with a fake clock and counting transaction IDs.
type harness struct {
	t   *testing.T
	m   *Manager
	now time.Time
	tx  uint64
}

func newHarness(t *testing.T, cfg Config) *harness {
	h := &harness{t: t, now: t0}
	cfg.NewTxID = func() disco.TxID {
		h.tx++
		var id disco.TxID
		binary.BigEndian.PutUint64(id[:], h.tx)
		return id
	}
	h.m = New(cfg)
	return h
}

// run ticks every 50 ms for d, calling each (if not nil) with every tick's sends.
func (h *harness) run(d time.Duration, each func(now time.Time, out []Send)) {
	for end := h.now.Add(d); h.now.Before(end); {
		h.now = h.now.Add(50 * time.Millisecond)
		out := h.m.Tick(h.now)
		if each != nil {
			each(h.now, out)
		}
	}
}

func pings(out []Send, to netip.AddrPort) []Send {
	var r []Send
	for _, s := range out {
		if _, ok := s.Msg.(*disco.Ping); ok && s.To == to {
			r = append(r, s)
		}
	}
	return r
}

func calls(out []Send) []Send {
	var r []Send
	for _, s := range out {
		if _, ok := s.Msg.(*disco.CallMeMaybe); ok {
			r = append(r, s)
		}
	}
	return r
}

func txOf(s Send) disco.TxID { return s.Msg.(*disco.Ping).TxID }

// answer delivers the pong for every ping in out sent to one of addrs, rtt later.
func (h *harness) answer(out []Send, rtt time.Duration, addrs ...netip.AddrPort) []Send {
	var more []Send
	for _, s := range out {
		if _, ok := s.Msg.(*disco.Ping); ok && slices.Contains(addrs, s.To) {
			more = append(more, h.m.HandlePong(s.Peer, s.To, txOf(s), self1, h.now.Add(rtt))...)
		}
	}
	return more
}

func (h *harness) wantPath(key wire.Key, kind Kind, addr netip.AddrPort) {
	h.t.Helper()
	if p := h.m.Path(key); p.Kind != kind || p.Addr != addr {
		h.t.Fatalf("at +%v: path %v %v, want %v %v", h.now.Sub(t0), p.Kind, p.Addr, kind, addr)
	}
}

func TestRelayFirstThenDirectWithoutGap(t *testing.T) {
	h := newHarness(t, Config{})
	h.m.SetRelay(true)
	h.m.SetSelf(Self{Endpoints: []netip.AddrPort{self1}})
	out := h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}}}}, h.now)

	h.wantPath(peerA, Relay, netip.AddrPort{})
	if ch := h.m.TakeChanged(); !slices.Equal(ch, []wire.Key{peerA}) {
		t.Fatalf("changed %v, want the new peer", ch)
	}
	// The first round asks the peer to probe too (through the relay), measures the relay,
	// and opens our own mapping towards the candidate with a TTL-limited ping.
	if c := calls(out); len(c) != 1 || c[0].To.IsValid() || !slices.Equal(c[0].Msg.(*disco.CallMeMaybe).Endpoints, []netip.AddrPort{self1}) {
		t.Fatalf("call-me-maybe: %+v", c)
	}
	if r := pings(out, netip.AddrPort{}); len(r) != 1 {
		t.Fatalf("relay pings: %+v", r)
	}
	first := pings(out, pubA)
	if len(first) != 1 || first[0].TTL != DefaultOpenTTL {
		t.Fatalf("first probe to the candidate: %+v", first)
	}

	// No full-TTL ping while the peer has not said its NAT lets us in: it could reach the
	// peer's router before the peer opened its mapping towards us (the NAT trap).
	h.run(BurstInterval, func(_ time.Time, o []Send) {
		if p := pings(o, pubA); len(p) != 0 {
			t.Fatalf("ping before the peer opened its NAT: %+v", p)
		}
	})
	// The peer's call-me-maybe says it opened towards self1: the ping goes at once; its
	// pong makes the path direct, straight from relay.
	second := pings(h.m.HandleCallMeMaybe(peerA, nil, []netip.AddrPort{self1}, h.now), pubA)
	if len(second) != 1 || second[0].TTL != 0 {
		t.Fatalf("second probe: %+v", second)
	}
	h.wantPath(peerA, Relay, netip.AddrPort{})
	h.answer(second, 3*time.Millisecond, pubA)
	p := h.m.Path(peerA)
	if p.Kind != Direct || p.Addr != pubA || p.RTT != 3*time.Millisecond {
		t.Fatalf("after the pong: %+v", p)
	}
	if ch := h.m.TakeChanged(); !slices.Equal(ch, []wire.Key{peerA}) {
		t.Fatalf("changed %v after the upgrade", ch)
	}
	if r := h.m.Reason(peerA); r != "" {
		t.Fatalf("direct peer has reason %q", r)
	}
	if got := h.m.Reflexive(); !slices.Equal(got, []netip.AddrPort{self1}) {
		t.Fatalf("reflexive %v, want what the pong reported", got)
	}
}

func TestNoRelayMeansNone(t *testing.T) {
	h := newHarness(t, Config{})
	out := h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}}}}, h.now)
	h.wantPath(peerA, None, netip.AddrPort{})
	if c := calls(out); len(c) != 0 {
		t.Fatalf("call-me-maybe without a relay: %+v", c)
	}
	h.m.TakeChanged()
	// A relay appearing moves the peer onto it; going away takes it off again.
	h.m.SetRelay(true)
	h.wantPath(peerA, Relay, netip.AddrPort{})
	if ch := h.m.TakeChanged(); !slices.Equal(ch, []wire.Key{peerA}) {
		t.Fatalf("changed %v when the relay came", ch)
	}
	h.m.SetRelay(false)
	h.wantPath(peerA, None, netip.AddrPort{})
	if ch := h.m.TakeChanged(); !slices.Equal(ch, []wire.Key{peerA}) {
		t.Fatalf("changed %v when the relay went", ch)
	}
	h.answer(out, time.Millisecond, pubA) // a TTL probe that reached the peer (LAN) counts
	h.wantPath(peerA, Direct, pubA)
	h.m.TakeChanged()
	h.m.SetRelay(true)
	if ch := h.m.TakeChanged(); len(ch) != 0 {
		t.Fatalf("a relay appearing changed a direct peer: %v", ch)
	}
}

func TestLANPreferredOverPublic(t *testing.T) {
	h := newHarness(t, Config{})
	h.m.SetRelay(true)
	out := h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}, {Addr: lanA, LAN: true}}}}, h.now)
	h.answer(out, 2*time.Millisecond, pubA)
	h.wantPath(peerA, Direct, pubA)
	// The LAN answers later and slower: still preferred.
	var next []Send
	h.run(BurstInterval, func(_ time.Time, o []Send) { next = append(next, o...) })
	h.answer(next, 5*time.Millisecond, lanA)
	h.wantPath(peerA, DirectLAN, lanA)
	// A faster public answer does not take it back.
	next = nil
	h.run(BurstInterval, func(_ time.Time, o []Send) { next = append(next, o...) })
	h.answer(next, time.Microsecond, pubA)
	h.wantPath(peerA, DirectLAN, lanA)
	if s := h.m.Candidates(peerA); len(s) != 2 || !s[1].Current || !s[1].LAN || !s[0].Confirmed {
		t.Fatalf("candidates: %+v", s)
	}
}

func TestRTTHysteresis(t *testing.T) {
	h := newHarness(t, Config{})
	out := h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}, {Addr: pub2A}}}}, h.now)
	h.answer(out, 10*time.Millisecond, pubA)
	h.wantPath(peerA, Direct, pubA)
	round := func(rtt time.Duration) {
		var o []Send
		h.run(BurstInterval, func(_ time.Time, x []Send) { o = append(o, x...) })
		h.answer(o, 10*time.Millisecond, pubA)
		h.answer(o, rtt, pub2A)
	}
	round(9 * time.Millisecond) // 10 % better: not worth a switch
	h.wantPath(peerA, Direct, pubA)
	round(7 * time.Millisecond) // 30 % better: switch
	h.wantPath(peerA, Direct, pub2A)
	round(9 * time.Millisecond) // the old one is now only a bit better: stay
	h.wantPath(peerA, Direct, pub2A)
}

// TestBlackHole: a direct path that stops answering while data flows falls back to the
// relay within DeadAfter of its last pong, and probing starts again.
func TestBlackHole(t *testing.T) {
	h := newHarness(t, Config{})
	h.m.SetRelay(true)
	out := h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}}}}, h.now)
	h.answer(out, time.Millisecond, pubA)
	h.wantPath(peerA, Direct, pubA)
	h.m.TakeChanged()

	alive := true
	var lastPong, fellBack time.Time
	var afterLoss []Send
	h.run(10*time.Second, func(now time.Time, o []Send) {
		h.m.DataSent(peerA, now)
		if !h.m.Busy() {
			t.Fatalf("at +%v: not busy while data flows", now.Sub(t0))
		}
		if alive {
			h.answer(o, time.Millisecond, pubA)
			if len(pings(o, pubA)) > 0 {
				lastPong = now
			}
			if now.Sub(t0) >= 5*time.Second {
				alive = false // the black hole opens
			}
			return
		}
		if fellBack.IsZero() {
			if h.m.Path(peerA).Kind == Relay {
				fellBack = now
				afterLoss = o
			}
		}
	})
	if fellBack.IsZero() {
		t.Fatal("never fell back to the relay")
	}
	// The black hole opened at +5 s, right after a pong; detection is DeadAfter from the
	// last pong, at tick granularity, well inside the 2 s the design allows.
	if gap := fellBack.Sub(lastPong); gap < DeadAfter || gap > DeadAfter+50*time.Millisecond {
		t.Fatalf("fell back %v after the last pong, want %v", gap, DeadAfter)
	}
	if ch := h.m.TakeChanged(); !slices.Contains(ch, peerA) {
		t.Fatalf("changed %v", ch)
	}
	// The fallback tick already re-probes: call-me-maybe and a TTL-limited probe (the
	// address no longer answers: full-TTL pings wait for the peer's word again).
	if len(calls(afterLoss)) != 1 || len(pings(afterLoss, pubA)) != 1 || pings(afterLoss, pubA)[0].TTL != DefaultOpenTTL {
		t.Fatalf("no re-probe with the fallback: %+v", afterLoss)
	}
	// While probing after the loss, the reason says so.
	h.now = fellBack
	if r := h.m.Reason(peerA); r != "direct path stopped answering; probing again" {
		t.Fatalf("reason %q", r)
	}
}

// TestPingCadence: the current path is pinged every IdlePing when idle and every ActivePing
// while data flows.
func TestPingCadence(t *testing.T) {
	h := newHarness(t, Config{})
	out := h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: lanA, LAN: true}}}}, h.now)
	h.answer(out, time.Millisecond, lanA)
	h.wantPath(peerA, DirectLAN, lanA)
	var idle []time.Time
	h.run(40*time.Second, func(now time.Time, o []Send) {
		for range pings(o, lanA) {
			idle = append(idle, now)
		}
		h.answer(o, time.Millisecond, lanA)
	})
	// The burst runs its course (2 s), then one ping every 10 s.
	var after []time.Duration
	for _, x := range idle {
		if d := x.Sub(t0); d >= BurstLength {
			after = append(after, d)
		}
	}
	want := []time.Duration{11800 * time.Millisecond, 21800 * time.Millisecond, 31800 * time.Millisecond}
	if !slices.Equal(after, want) {
		t.Fatalf("idle pings at %v, want %v", after, want)
	}
	if h.m.Busy() {
		t.Fatal("busy while idle on a LAN path")
	}
	var active int
	h.run(5*time.Second, func(now time.Time, o []Send) {
		h.m.DataSent(peerA, now)
		active += len(pings(o, lanA))
		h.answer(o, time.Millisecond, lanA)
	})
	if active < 9 || active > 11 {
		t.Fatalf("%d pings in 5 s of data, want one per %v", active, ActivePing)
	}
}

// TestIdlePathDiesAfterRetries: an idle path whose keepalive ping goes unanswered is
// retried every ActivePing and dropped DeadAfter after that ping.
func TestIdlePathDiesAfterRetries(t *testing.T) {
	h := newHarness(t, Config{})
	out := h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: lanA, LAN: true}}}}, h.now)
	h.answer(out, time.Millisecond, lanA)
	answering := true
	var lost time.Time
	var sent []time.Duration
	h.run(15*time.Second, func(now time.Time, o []Send) {
		if now.Sub(t0) > 3*time.Second {
			answering = false
		}
		if !answering {
			for range pings(o, lanA) {
				sent = append(sent, now.Sub(t0))
			}
		}
		if answering {
			h.answer(o, time.Millisecond, lanA)
		}
		if lost.IsZero() && h.m.Path(peerA).Kind == None {
			lost = now
		}
	})
	// Keepalive at 11.8 s (unanswered), retries at 12.3 and 12.8, dead at 13.3.
	if got := lost.Sub(t0); got != 13300*time.Millisecond {
		t.Fatalf("lost at %v (pings %v)", got, sent)
	}
	if !slices.Equal(sent[:3], []time.Duration{11800 * time.Millisecond, 12300 * time.Millisecond, 12800 * time.Millisecond}) {
		t.Fatalf("pings %v", sent)
	}
}

// TestBackoff: when nothing answers, bursts come after gaps of 1, 2, 4, … up to 30 s, each
// opening with TTL-limited probes and a call-me-maybe.
func TestBackoff(t *testing.T) {
	h := newHarness(t, Config{})
	h.m.SetRelay(true)
	// A peer with no NAT: no NAT trap to avoid, so every round pings (the timing is tested).
	out := h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}}, NAT: wire.NATNone}}, h.now)
	type round struct {
		at   time.Duration
		ttl  int
		call bool
	}
	rounds := []round{{0, pings(out, pubA)[0].TTL, len(calls(out)) == 1}}
	h.run(130*time.Second, func(now time.Time, o []Send) {
		if p := pings(o, pubA); len(p) > 0 {
			rounds = append(rounds, round{now.Sub(t0), p[0].TTL, len(calls(o)) == 1})
		}
	})
	var starts []time.Duration
	for i, r := range rounds {
		if i == 0 || r.at-rounds[i-1].at > BurstInterval {
			starts = append(starts, r.at)
			if r.ttl != DefaultOpenTTL || !r.call {
				t.Errorf("burst at %v: TTL %d, call-me-maybe %v", r.at, r.ttl, r.call)
			}
		} else if r.ttl != 0 || r.call {
			t.Errorf("round at %v: TTL %d, call-me-maybe %v", r.at, r.ttl, r.call)
		}
	}
	s := time.Second
	want := []time.Duration{0, 2800 * time.Millisecond, 5200 * time.Millisecond, 9600 * time.Millisecond,
		18 * s, 34400 * time.Millisecond, 64800 * time.Millisecond, 95200 * time.Millisecond, 125600 * time.Millisecond}
	if !slices.Equal(starts, want) {
		t.Fatalf("bursts at %v, want %v", starts, want)
	}
	if len(rounds) != 10+3*(len(want)-1) {
		t.Fatalf("%d rounds, want a 10-round burst then 3-round ones", len(rounds))
	}
	if r := h.m.Reason(peerA); r != "no direct path answered" {
		t.Fatalf("reason %q", r)
	}
}

func TestOpenTTLDisabled(t *testing.T) {
	h := newHarness(t, Config{OpenTTL: -1})
	out := h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}}}}, h.now)
	if p := pings(out, pubA); len(p) != 1 || p[0].TTL != 0 {
		t.Fatalf("first probe %+v, want a plain ping", p)
	}
}

// TestPeerReflexive: a ping from an address the map does not list is answered there (with
// what we saw), learned as the peer's, and probed back; a pong from elsewhere than asked
// teaches that address too.
func TestPeerReflexive(t *testing.T) {
	h := newHarness(t, Config{})
	h.m.SetRelay(true)
	// No NAT at the peer: the map candidate gets pings without the peer's word (see
	// TestNoFullTTLBeforePeerOpened).
	h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}}, NAT: wire.NATNone}}, h.now)
	h.m.TakeChanged()
	tx := disco.TxID{9}
	out := h.m.HandlePing(peerA, seenA, tx, h.now)
	if len(out) != 2 {
		t.Fatalf("sends %+v, want a pong and a ping", out)
	}
	if pong, ok := out[0].Msg.(*disco.Pong); !ok || out[0].To != seenA || pong.TxID != tx || pong.Src != seenA {
		t.Fatalf("pong %+v", out[0])
	}
	back := pings(out, seenA)
	if len(back) != 1 || back[0].TTL != 0 {
		t.Fatalf("probe back %+v", back)
	}
	if ch := h.m.TakeChanged(); !slices.Equal(ch, []wire.Key{peerA}) {
		t.Fatalf("changed %v after learning", ch)
	}
	cs := h.m.Candidates(peerA)
	if len(cs) != 2 || cs[1].Addr != seenA || !cs[1].Learned || cs[1].LAN {
		t.Fatalf("candidates %+v", cs)
	}
	h.answer(back, time.Millisecond, seenA)
	h.wantPath(peerA, Direct, seenA)

	// A pong that comes back from another address than the ping went to.
	other := netip.MustParseAddrPort("203.0.113.10:40001")
	var o []Send
	h.run(BurstInterval, func(_ time.Time, x []Send) { o = append(o, x...) })
	ps := pings(o, pubA)
	if len(ps) == 0 {
		t.Fatal("no ping to the map candidate")
	}
	more := h.m.HandlePong(peerA, other, txOf(ps[0]), netip.MustParseAddrPort("198.51.100.7:1234"), h.now)
	if len(pings(more, other)) != 1 {
		t.Fatalf("the new address is not probed: %+v", more)
	}
	if h.m.Candidates(peerA)[2].Addr != other {
		t.Fatalf("candidates %+v", h.m.Candidates(peerA))
	}
	if got := h.m.Reflexive(); len(got) != 2 || got[0] != netip.MustParseAddrPort("198.51.100.7:1234") {
		t.Fatalf("reflexive %v, want the latest first", got)
	}
	// Through the relay: a pong back through the relay and nothing learned.
	out = h.m.HandlePing(peerA, netip.AddrPort{}, tx, h.now)
	if len(out) != 1 || out[0].To.IsValid() {
		t.Fatalf("relay ping answered with %+v", out)
	}
}

func TestLearnedBounded(t *testing.T) {
	h := newHarness(t, Config{})
	h.m.SetPeers([]Peer{{Key: peerA}}, h.now)
	for i := range 50 {
		h.now = h.now.Add(time.Millisecond)
		h.m.HandlePing(peerA, netip.AddrPortFrom(netip.MustParseAddr("203.0.113.50"), uint16(1000+i)), disco.TxID{}, h.now)
	}
	if n := len(h.m.Candidates(peerA)); n != maxLearned {
		t.Fatalf("%d candidates, want the %d most recent", n, maxLearned)
	}
	// Unheard-of learned candidates expire.
	h.run(learnedTTL+time.Second, nil)
	if n := len(h.m.Candidates(peerA)); n != 0 {
		t.Fatalf("%d candidates after %v of silence", n, learnedTTL)
	}
}

func TestCallMeMaybe(t *testing.T) {
	h := newHarness(t, Config{})
	h.m.SetRelay(true)
	h.m.SetPeers([]Peer{{Key: peerA}}, h.now)
	h.run(3*time.Second, nil)
	out := h.m.HandleCallMeMaybe(peerA, []netip.AddrPort{pubA, lanA, {}}, nil, h.now)
	if p := pings(out, pubA); len(p) != 1 || p[0].TTL != DefaultOpenTTL {
		t.Fatalf("probe to the called endpoint: %+v", out)
	}
	if len(pings(out, lanA)) != 1 {
		t.Fatalf("no probe to the LAN endpoint: %+v", out)
	}
	// The call is answered once, saying which of the peer's addresses our NAT now lets
	// in (the TTL-limited probes above); the LAN one is never behind the peer's NAT.
	if c := calls(out); len(c) != 1 || !slices.Equal(c[0].Msg.(*disco.CallMeMaybe).Opened, []netip.AddrPort{pubA}) {
		t.Fatalf("answer to call-me-maybe: %+v", c)
	}
	if cs := h.m.Candidates(peerA); len(cs) != 2 || !cs[1].LAN {
		t.Fatalf("candidates %+v", cs)
	}
	// A second call straight away while probing adds nothing, and is not answered: two
	// sides do not keep calling each other.
	if out := h.m.HandleCallMeMaybe(peerA, []netip.AddrPort{pubA}, nil, h.now); len(out) != 0 {
		t.Fatalf("repeated call: %+v", out)
	}
}

func TestPunch(t *testing.T) {
	h := newHarness(t, Config{})
	h.m.SetRelay(true)
	h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}}}}, h.now)
	h.run(4*time.Second, nil) // between bursts now
	out := h.m.Punch(peerA, h.now)
	if len(calls(out)) != 1 || len(pings(out, pubA)) != 1 || pings(out, pubA)[0].TTL != DefaultOpenTTL {
		t.Fatalf("punch: %+v", out)
	}
	if h.m.Punch(wire.Key{99}, h.now) != nil {
		t.Fatal("punch for an unknown peer sent something")
	}
}

func TestRebind(t *testing.T) {
	h := newHarness(t, Config{})
	h.m.SetRelay(true)
	out := h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: lanA, LAN: true}}}}, h.now)
	h.answer(out, time.Millisecond, lanA)
	h.run(5*time.Second, nil) // idle on the LAN path
	if len(h.m.Reflexive()) != 1 {
		t.Fatal("no reflexive address learned")
	}
	out = h.m.Rebind(h.now)
	if len(pings(out, lanA)) != 1 || len(calls(out)) != 1 {
		t.Fatalf("rebind sends %+v", out)
	}
	if len(h.m.Reflexive()) != 0 {
		t.Fatal("reflexive addresses survive a network change")
	}
	h.run(DeadAfter, nil)
	h.wantPath(peerA, Relay, netip.AddrPort{})
}

func TestPathFailed(t *testing.T) {
	h := newHarness(t, Config{})
	h.m.SetRelay(true)
	out := h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}}}}, h.now)
	h.answer(out, time.Millisecond, pubA)
	h.m.TakeChanged()
	out = h.m.PathFailed(peerA, h.now)
	h.wantPath(peerA, Relay, netip.AddrPort{})
	if len(pings(out, pubA)) != 1 {
		t.Fatalf("no re-probe: %+v", out)
	}
	if ch := h.m.TakeChanged(); !slices.Equal(ch, []wire.Key{peerA}) {
		t.Fatalf("changed %v", ch)
	}
}

func TestRemovePeer(t *testing.T) {
	h := newHarness(t, Config{})
	h.m.SetRelay(true)
	out := h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}}}, {Key: peerB}}, h.now)
	h.m.TakeChanged()
	h.m.SetPeers([]Peer{{Key: peerB}}, h.now)
	h.wantPath(peerA, None, netip.AddrPort{})
	if ch := h.m.TakeChanged(); !slices.Equal(ch, []wire.Key{peerA}) {
		t.Fatalf("changed %v", ch)
	}
	if more := h.answer(out, time.Millisecond, pubA); len(more) != 0 {
		t.Fatalf("a removed peer's pong produced %+v", more)
	}
	h.wantPath(peerA, None, netip.AddrPort{})
	if h.m.Candidates(peerA) != nil || h.m.Reason(peerA) != "" {
		t.Fatal("removed peer still described")
	}
	h.run(5*time.Second, func(_ time.Time, o []Send) {
		for _, s := range o {
			if s.Peer == peerA {
				t.Fatalf("send to a removed peer: %+v", s)
			}
		}
	})
	if h.m.HandlePing(peerA, pubA, disco.TxID{}, h.now) != nil {
		t.Fatal("answered a removed peer's ping")
	}
}

func TestCandidatesUpdate(t *testing.T) {
	h := newHarness(t, Config{})
	out := h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}, {Addr: pub2A}}}}, h.now)
	h.answer(out, time.Millisecond, pubA)
	h.m.TakeChanged()
	// pub2A (never answered) goes; pubA (the current path) leaves the map but stays, learned;
	// lanA is new and probed at once.
	out = h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: lanA, LAN: true}}}}, h.now)
	if len(pings(out, lanA)) != 1 {
		t.Fatalf("new candidate not probed: %+v", out)
	}
	cs := h.m.Candidates(peerA)
	if len(cs) != 2 || cs[0].Addr != lanA || cs[1].Addr != pubA || !cs[1].Learned || !cs[1].Current {
		t.Fatalf("candidates %+v", cs)
	}
	if ch := h.m.TakeChanged(); !slices.Equal(ch, []wire.Key{peerA}) {
		t.Fatalf("changed %v", ch)
	}
	// Unchanged candidates change nothing.
	if out := h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: lanA, LAN: true}}}}, h.now); len(out) != 0 {
		t.Fatalf("unchanged map sent %+v", out)
	}
	if ch := h.m.TakeChanged(); len(ch) != 0 {
		t.Fatalf("changed %v", ch)
	}
}

func TestPongChecks(t *testing.T) {
	h := newHarness(t, Config{})
	h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}}}, {Key: peerB}}, h.now)
	out := h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}}}, {Key: peerB}}, h.now)
	h.run(BurstInterval, func(_ time.Time, o []Send) { out = append(out, o...) })
	p := pings(out, pubA)
	// A pong with an unknown transaction, or from another peer, confirms nothing.
	h.m.HandlePong(peerA, pubA, disco.TxID{0xFF}, netip.AddrPort{}, h.now)
	h.m.HandlePong(peerB, pubA, txOf(p[0]), netip.AddrPort{}, h.now)
	h.wantPath(peerA, None, netip.AddrPort{})
	// The right one does, once.
	h.m.HandlePong(peerA, pubA, txOf(p[0]), netip.AddrPort{}, h.now)
	h.wantPath(peerA, Direct, pubA)
}

func TestReasons(t *testing.T) {
	h := newHarness(t, Config{})
	h.m.SetRelay(true)
	h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}}}, {Key: peerB}}, h.now)
	if r := h.m.Reason(peerA); r != "still probing" {
		t.Fatalf("new peer: %q", r)
	}
	h.run(BurstLength, nil)
	for _, c := range []struct {
		self, peer, want string
	}{
		{"", "", "no direct path answered"},
		{wire.NATEasy, wire.NATSymmetric, "peer behind symmetric NAT"},
		{wire.NATSymmetric, wire.NATSymmetric, "both behind symmetric NAT"},
		{wire.NATSymmetric, wire.NATNone, "behind symmetric NAT here"},
		{wire.NATUDPBlocked, wire.NATSymmetric, "UDP blocked here"},
	} {
		h.m.SetSelf(Self{NAT: c.self})
		h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}}, NAT: c.peer}, {Key: peerB}}, h.now)
		if r := h.m.Reason(peerA); r != c.want {
			t.Errorf("self %q, peer %q: reason %q, want %q", c.self, c.peer, r, c.want)
		}
	}
	h.m.SetSelf(Self{})
	if r := h.m.Reason(peerB); r != "no known address for the peer" {
		t.Errorf("peer without candidates: %q", r)
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{None: "none", Relay: "relay", Direct: "direct", DirectLAN: "direct lan"} {
		if k.String() != want {
			t.Errorf("%d: %q", k, k.String())
		}
	}
}

// TestPingBack: a ping from an unconfirmed address is answered with a ping at once, even
// right after our own probe to it (which may have arrived before the peer knew us).
func TestPingBack(t *testing.T) {
	h := newHarness(t, Config{})
	out := h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}}}}, h.now)
	if len(pings(out, pubA)) != 1 {
		t.Fatal("no probe")
	}
	h.now = h.now.Add(30 * time.Millisecond)
	back := pings(h.m.HandlePing(peerA, pubA, disco.TxID{7}, h.now), pubA)
	if len(back) != 1 {
		t.Fatal("no ping back")
	}
	// But not a second time straight away.
	if len(pings(h.m.HandlePing(peerA, pubA, disco.TxID{8}, h.now.Add(time.Millisecond)), pubA)) != 0 {
		t.Fatal("pinged back twice within a millisecond")
	}
	h.answer(back, time.Millisecond, pubA)
	h.wantPath(peerA, Direct, pubA)
}

// fullPings are the pings in out to addr at full TTL.
func fullPings(out []Send, to netip.AddrPort) []Send {
	var r []Send
	for _, s := range pings(out, to) {
		if s.TTL == 0 {
			r = append(r, s)
		}
	}
	return r
}

// TestNoFullTTLBeforePeerOpened: an address that has not answered gets only TTL-limited
// probes until the peer says (call-me-maybe's Opened) that its NAT lets in an address of
// ours, or a ping comes from it: a full-TTL ping reaching the peer's router first could
// make it remap the peer's own packets to us (the Linux NAT trap).
func TestNoFullTTLBeforePeerOpened(t *testing.T) {
	h := newHarness(t, Config{})
	h.m.SetRelay(true)
	h.m.SetSelf(Self{Endpoints: []netip.AddrPort{self1}, At: t0})
	out := h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}}, NAT: wire.NATEasy}}, h.now)
	if p := pings(out, pubA); len(p) != 1 || p[0].TTL != DefaultOpenTTL {
		t.Fatalf("first probe %+v", p)
	}
	check := func(what string, out []Send) {
		t.Helper()
		if p := fullPings(out, pubA); len(p) != 0 {
			t.Fatalf("%s: full-TTL ping before the peer opened its NAT: %+v", what, p)
		}
	}
	h.run(5*time.Second, func(_ time.Time, o []Send) { check("probing", o) })
	// The peer opened its NAT to an address that is not ours: still nothing.
	other := netip.MustParseAddrPort("198.51.100.99:51820")
	check("opened to another address", h.m.HandleCallMeMaybe(peerA, nil, []netip.AddrPort{other}, h.now))
	h.run(time.Second, func(_ time.Time, o []Send) { check("after a call for another address", o) })
	// It opened towards us: the ping goes at once.
	out = h.m.HandleCallMeMaybe(peerA, nil, []netip.AddrPort{self1}, h.now)
	if p := fullPings(out, pubA); len(p) != 1 {
		t.Fatalf("no ping once the peer opened its NAT: %+v", out)
	}
	// A ping from an address means the peer's NAT lets us in there: pinged back at once.
	out = h.m.HandlePing(peerA, seenA, disco.TxID{7}, h.now)
	if p := fullPings(out, seenA); len(p) != 1 {
		t.Fatalf("no ping back: %+v", out)
	}
}

// TestRoamReprobe: after a direct path dies, full-TTL pings to addresses that do not answer
// wait for the peer's word about an address of ours measured since the loss (the old ones
// may be gone: we may have roamed). When pings on that word still get no answer, a clash
// entry may stand on a router (the peer's packets from its new address reached ours
// first): nothing but answers goes to those addresses for clashExpiry, so it expires;
// then TTL-limited probes and call-me-maybe start over.
func TestRoamReprobe(t *testing.T) {
	h := newHarness(t, Config{})
	h.m.SetRelay(true)
	h.m.SetSelf(Self{Endpoints: []netip.AddrPort{self1}, At: t0})
	h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}}, NAT: wire.NATEasy}}, h.now)
	h.now = h.now.Add(time.Second)
	h.answer(h.m.HandleCallMeMaybe(peerA, nil, []netip.AddrPort{self1}, h.now), time.Millisecond, pubA)
	h.wantPath(peerA, Direct, pubA)

	// The path dies; the peer turns up at a new address too (map update).
	h.now = h.now.Add(time.Second)
	out := h.m.PathFailed(peerA, h.now)
	h.wantPath(peerA, Relay, netip.AddrPort{})
	if p := pings(out, pubA); len(calls(out)) != 1 || len(p) != 1 || p[0].TTL != DefaultOpenTTL {
		t.Fatalf("re-probe after the loss: %+v", out)
	}
	out = h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}, {Addr: pub2A}}, NAT: wire.NATEasy}}, h.now)
	if p := pings(out, pub2A); len(p) != 1 || p[0].TTL != DefaultOpenTTL {
		t.Fatalf("probe to the new address: %+v", out)
	}
	// The peer's word about an address of ours measured before the loss does not count.
	var sent []Send
	sent = append(sent, h.m.HandleCallMeMaybe(peerA, nil, []netip.AddrPort{self1}, h.now)...)
	h.run(time.Second, func(_ time.Time, o []Send) { sent = append(sent, o...) })
	if p := append(fullPings(sent, pubA), fullPings(sent, pub2A)...); len(p) != 0 {
		t.Fatalf("full-TTL ping on the word about a stale address: %+v", p)
	}
	// Our new public address is measured; the peer says it opened towards it: pings go.
	self2 := netip.MustParseAddrPort("198.51.100.8:51820")
	h.m.SetSelf(Self{Endpoints: []netip.AddrPort{self2}, At: h.now})
	out = h.m.HandleCallMeMaybe(peerA, nil, []netip.AddrPort{self2}, h.now)
	if len(fullPings(out, pub2A)) != 1 {
		t.Fatalf("no ping once the peer opened to our current address: %+v", out)
	}
	// Nothing answers them: once the burst ends, the quiet begins.
	var quietFrom time.Time
	h.run(5*time.Second, func(now time.Time, o []Send) {
		if quietFrom.IsZero() && !h.m.peers[peerA].quietUntil.IsZero() {
			quietFrom = now
		}
	})
	if quietFrom.IsZero() {
		t.Fatal("no quiet after pings on the peer's word failed")
	}
	var quiet []Send
	quiet = append(quiet, h.m.HandleCallMeMaybe(peerA, nil, []netip.AddrPort{self2}, h.now)...)
	h.run(quietFrom.Add(clashExpiry).Sub(h.now)-100*time.Millisecond, func(_ time.Time, o []Send) { quiet = append(quiet, o...) })
	if p := append(pings(quiet, pubA), pings(quiet, pub2A)...); len(p) != 0 {
		t.Fatalf("sent during the quiet: %+v", p)
	}
	// An answer still goes: a ping from the new address is pinged back there.
	if p := fullPings(h.m.HandlePing(peerA, pub2A, disco.TxID{8}, h.now), pub2A); len(p) != 1 {
		t.Fatalf("no ping back during the quiet: %+v", p)
	}
}

// TestQuietEnds: after the quiet, probing starts over with TTL-limited probes and
// call-me-maybe; full pings follow the peer's word.
func TestQuietEnds(t *testing.T) {
	h := newHarness(t, Config{})
	h.m.SetRelay(true)
	h.m.SetSelf(Self{Endpoints: []netip.AddrPort{self1}, At: t0})
	h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}}, NAT: wire.NATEasy}}, h.now)
	h.now = h.now.Add(time.Second)
	h.answer(h.m.HandleCallMeMaybe(peerA, nil, []netip.AddrPort{self1}, h.now), time.Millisecond, pubA)
	h.now = h.now.Add(time.Second)
	h.m.PathFailed(peerA, h.now)
	h.m.SetSelf(Self{Endpoints: []netip.AddrPort{self1}, At: h.now})
	h.m.HandleCallMeMaybe(peerA, nil, []netip.AddrPort{self1}, h.now)
	h.run(3*time.Second, nil)
	until := h.m.peers[peerA].quietUntil
	if until.IsZero() {
		t.Fatal("no quiet")
	}
	var first []Send
	h.run(until.Sub(h.now)+time.Second, func(now time.Time, o []Send) {
		if len(pings(o, pubA)) > 0 && first == nil {
			if now.Before(until) {
				t.Fatalf("probe %v before the quiet ended", until.Sub(now))
			}
			first = o
		}
	})
	if p := pings(first, pubA); len(p) != 1 || p[0].TTL != DefaultOpenTTL || len(calls(first)) != 1 {
		t.Fatalf("first round after the quiet: %+v", first)
	}
	if c := calls(first); !slices.Contains(c[0].Msg.(*disco.CallMeMaybe).Opened, pubA) {
		t.Fatalf("call-me-maybe after the quiet: %+v", c)
	}
	h.m.SetSelf(Self{Endpoints: []netip.AddrPort{self1}, At: h.now})
	if p := fullPings(h.m.HandleCallMeMaybe(peerA, nil, []netip.AddrPort{self1}, h.now), pubA); len(p) != 1 {
		t.Fatalf("no ping on the peer's word after the quiet: %+v", p)
	}
}

// TestOpenedBeforeSTUN: before any measurement of our public address and any direct path,
// the peer's word lists where the broker saw us, and counts.
func TestOpenedBeforeSTUN(t *testing.T) {
	h := newHarness(t, Config{})
	h.m.SetRelay(true)
	h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}}, NAT: wire.NATEasy}}, h.now)
	h.now = h.now.Add(BurstInterval)
	if p := fullPings(h.m.HandleCallMeMaybe(peerA, nil, []netip.AddrPort{self1}, h.now), pubA); len(p) != 1 {
		t.Fatalf("no ping on the peer's word before STUN: %+v", p)
	}
}

// TestMappedPeerPingedAtOnce: a peer whose gateway maps a port to it (NAT "mapped") takes
// unsolicited packets there, as a peer without NAT does: after the opening probe, full-TTL
// pings go without waiting for its word, and the path confirms on the first pong.
func TestMappedPeerPingedAtOnce(t *testing.T) {
	for _, nat := range []string{wire.NATMapped, wire.NATEasy} {
		h := newHarness(t, Config{})
		h.m.SetRelay(true)
		h.m.SetSelf(Self{Endpoints: []netip.AddrPort{self1}, NAT: wire.NATSymmetric, At: t0})
		h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}}, NAT: nat}}, h.now)
		var full []Send
		h.run(BurstInterval+50*time.Millisecond, func(_ time.Time, o []Send) { full = append(full, fullPings(o, pubA)...) })
		switch {
		case nat == wire.NATMapped && len(full) == 0:
			t.Fatalf("%s: no full-TTL ping without the peer's word", nat)
		case nat != wire.NATMapped && len(full) != 0:
			t.Fatalf("%s: full-TTL ping without the peer's word: %+v", nat, full)
		case nat == wire.NATMapped:
			h.answer(full, 5*time.Millisecond, pubA)
			h.wantPath(peerA, Direct, pubA)
		}
	}
}
