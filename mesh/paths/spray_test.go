package paths

import (
	"net/netip"
	"testing"
	"time"

	"github.com/weftmesh/weft/mesh/disco"
	"github.com/weftmesh/weft/wire"
)

var symSelf = netip.MustParseAddrPort("198.51.100.7:40001") // a symmetric NAT's mapping of ours

func sprays(out []Send) []*disco.Spray {
	var r []*disco.Spray
	for _, s := range out {
		if m, ok := s.Msg.(*disco.Spray); ok {
			if s.To.IsValid() {
				panic("a spray request must go through the relay")
			}
			r = append(r, m)
		}
	}
	return r
}

// The hard side (symmetric NAT, peer behind an easy one) opens SprayPorts mappings from
// aux sockets with TTL-limited probes, asks the peer to spray, and ends up on the aux
// socket a spray ping arrived on; the other aux sockets close after the attempt.
func TestSprayHardSide(t *testing.T) {
	h := newHarness(t, Config{})
	h.m.SetRelay(true)
	h.m.SetSelf(Self{Endpoints: []netip.AddrPort{lanA, symSelf}, NAT: wire.NATSymmetric, At: h.now})
	out := h.m.SetPeers([]Peer{{Key: peerA, NAT: wire.NATEasy, Candidates: []Candidate{{Addr: pubA}, {Addr: lanA, LAN: true}}}}, h.now)

	sp := sprays(out)
	if len(sp) != 1 || sp[0].Addr != symSelf.Addr() || sp[0].Ports != SprayPorts {
		t.Fatalf("spray requests %+v, want one for %s", sp, symSelf.Addr())
	}
	ids := map[uint32]bool{}
	for _, s := range pings(out, pubA) {
		if s.Aux == 0 {
			continue
		}
		if s.TTL != DefaultOpenTTL {
			t.Fatalf("aux probe with TTL %d, want %d: it must die before the peer's router", s.TTL, DefaultOpenTTL)
		}
		ids[s.Aux] = true
	}
	if len(ids) != SprayPorts || len(pings(out, lanA)) != 1 {
		t.Fatalf("%d aux sockets probed the public address (want %d); LAN pings %d", len(ids), SprayPorts, len(pings(out, lanA)))
	}
	aux := h.m.AuxSockets()
	if len(aux) != SprayPorts {
		t.Fatalf("%d aux sockets to keep open, want %d", len(aux), SprayPorts)
	}
	var won uint32
	for id := range ids {
		if aux[id] != peerA {
			t.Fatalf("aux socket %d kept for %v", id, aux[id])
		}
		won = max(won, id)
	}

	// One of the peer's spray pings meets our mapping: answered on that socket, and
	// pinged back from it.
	h.now = h.now.Add(100 * time.Millisecond)
	out = h.m.HandlePingAux(peerA, seenA, won, disco.TxID{9}, h.now)
	var back Send
	for _, s := range out {
		switch s.Msg.(type) {
		case *disco.Pong:
			if s.To != seenA || s.Aux != won {
				t.Fatalf("pong %+v, want to %s from aux %d", s, seenA, won)
			}
		case *disco.Ping:
			back = s
		}
	}
	if back.To != seenA || back.Aux != won {
		t.Fatalf("ping back %+v, want to %s from aux %d", back, seenA, won)
	}
	h.m.HandlePongAux(peerA, seenA, won, txOf(back), symSelf, h.now.Add(5*time.Millisecond))
	if p := h.m.Path(peerA); p.Kind != Direct || p.Addr != seenA || p.Aux != won {
		t.Fatalf("path %+v, want direct to %s from aux %d", p, seenA, won)
	}
	// A pong on an aux socket tells nothing about the WireGuard socket's mapping.
	if r := h.m.Reflexive(); len(r) != 0 {
		t.Fatalf("learned %v as our address from an aux socket's pong", r)
	}

	h.run(sprayWindow, func(now time.Time, out []Send) {
		h.answer(out, 5*time.Millisecond, seenA)
		if len(sprays(out)) > 0 {
			t.Fatalf("at +%v, on path %+v: a new attempt", now.Sub(t0), h.m.Path(peerA))
		}
	})
	if aux := h.m.AuxSockets(); len(aux) != 1 || aux[won] != peerA {
		t.Fatalf("after the attempt: %d aux sockets, want only %d", len(aux), won)
	}
	// Keeping the path pings it from its aux socket.
	kept := 0
	h.run(IdlePing, func(_ time.Time, out []Send) {
		h.answer(out, 5*time.Millisecond, seenA)
		for _, s := range pings(out, seenA) {
			if s.Aux != won {
				t.Fatalf("path ping from aux %d, want %d", s.Aux, won)
			}
			kept++
		}
	})
	if kept == 0 || h.m.Path(peerA).Aux != won {
		t.Fatalf("%d pings kept the path; path %+v", kept, h.m.Path(peerA))
	}
}

// A failed attempt is retried, not more often than the burst schedule, with new sockets.
func TestSprayRetries(t *testing.T) {
	h := newHarness(t, Config{})
	h.m.SetRelay(true)
	h.m.SetSelf(Self{Endpoints: []netip.AddrPort{symSelf}, NAT: wire.NATSymmetric, At: h.now})
	out := h.m.SetPeers([]Peer{{Key: peerA, NAT: wire.NATEasy, Candidates: []Candidate{{Addr: pubA}}}}, h.now)
	attempts, last := len(sprays(out)), h.m.AuxSockets()
	var times []time.Time
	h.run(20*time.Second, func(now time.Time, out []Send) {
		if n := len(sprays(out)); n > 0 {
			attempts += n
			times = append(times, now)
			for id := range h.m.AuxSockets() {
				if _, old := last[id]; old {
					t.Fatalf("attempt at +%v reuses aux socket %d", now.Sub(t0), id)
				}
			}
			last = h.m.AuxSockets()
		}
	})
	if attempts < 2 || attempts > 6 {
		t.Fatalf("%d attempts in 20 s (at %v), want a few", attempts, times)
	}
	for i := 1; i < len(times); i++ {
		if times[i].Sub(times[i-1]) < sprayWindow {
			t.Fatalf("attempts %v apart", times[i].Sub(times[i-1]))
		}
	}
}

// No attempt where birthday probing cannot help or cannot be coordinated.
func TestSprayOnlyWhereItHelps(t *testing.T) {
	for name, c := range map[string]struct {
		self, peer string
		relay      bool
	}{
		"both symmetric":  {wire.NATSymmetric, wire.NATSymmetric, true},
		"peer public":     {wire.NATSymmetric, wire.NATNone, true},
		"peer unknown":    {wire.NATSymmetric, wire.NATUnknown, true},
		"we are the easy": {wire.NATEasy, wire.NATSymmetric, true},
		"no relay":        {wire.NATSymmetric, wire.NATEasy, false},
	} {
		h := newHarness(t, Config{})
		h.m.SetRelay(c.relay)
		h.m.SetSelf(Self{Endpoints: []netip.AddrPort{symSelf}, NAT: c.self, At: h.now})
		out := h.m.SetPeers([]Peer{{Key: peerA, NAT: c.peer, Candidates: []Candidate{{Addr: pubA}}}}, h.now)
		h.run(10*time.Second, func(_ time.Time, more []Send) { out = append(out, more...) })
		if n := len(sprays(out)); n != 0 || len(h.m.AuxSockets()) != 0 {
			t.Errorf("%s: %d spray requests, %d aux sockets", name, n, len(h.m.AuxSockets()))
		}
	}
}

// The easy side pings SprayPings distinct random ports of the hard side's address, only
// for a peer known at that address, at most every sprayAnswerEvery, and takes the path
// whose pong comes back.
func TestSprayEasySide(t *testing.T) {
	seq := uint16(0)
	h := newHarness(t, Config{RandPort: func() uint16 {
		seq++
		return seq * 61 // some land under 1024 and some repeat after the wrap: skipped
	}})
	h.m.SetRelay(true)
	h.m.SetSelf(Self{Endpoints: []netip.AddrPort{self1}, NAT: wire.NATEasy, At: h.now})
	h.m.SetPeers([]Peer{{Key: peerA, NAT: wire.NATSymmetric, Candidates: []Candidate{{Addr: pubA}}}}, h.now)
	h.run(time.Second, nil)

	if out := h.m.HandleSpray(peerA, &disco.Spray{Addr: netip.MustParseAddr("192.0.2.99"), Ports: SprayPorts}, h.now); len(out) != 0 {
		t.Fatalf("sprayed %d pings at an address the peer is not known at", len(out))
	}
	if out := h.m.HandleSpray(peerB, &disco.Spray{Addr: pubA.Addr(), Ports: SprayPorts}, h.now); len(out) != 0 {
		t.Fatalf("sprayed for a stranger")
	}
	out := h.m.HandleSpray(peerA, &disco.Spray{Addr: pubA.Addr(), Ports: SprayPorts}, h.now)
	if len(out) != sprayChunk {
		t.Fatalf("%d spray pings at first, want a chunk of %d", len(out), sprayChunk)
	}
	// The rest follow in chunks, not all at once (a router's backlog would drop them).
	h.run(time.Second, func(_ time.Time, more []Send) {
		var chunk []Send
		for _, s := range more {
			if _, ok := s.Msg.(*disco.Ping); ok && s.To.Addr() == pubA.Addr() && s.To != pubA {
				chunk = append(chunk, s)
			}
		}
		if len(chunk) > sprayChunk {
			t.Fatalf("%d spray pings in one tick", len(chunk))
		}
		out = append(out, chunk...)
	})
	if len(out) != SprayPings {
		t.Fatalf("%d spray pings, want %d", len(out), SprayPings)
	}
	ports := map[uint16]bool{}
	for _, s := range out {
		if _, ok := s.Msg.(*disco.Ping); !ok || s.Aux != 0 || s.TTL != 0 || s.To.Addr() != pubA.Addr() || s.To.Port() < sprayMinPort || ports[s.To.Port()] {
			t.Fatalf("spray send %+v", s)
		}
		ports[s.To.Port()] = true
	}
	if again := h.m.HandleSpray(peerA, &disco.Spray{Addr: pubA.Addr(), Ports: SprayPorts}, h.now); len(again) != 0 {
		t.Fatal("a second request within sprayAnswerEvery was answered")
	}

	hit := out[500]
	h.m.HandlePong(peerA, hit.To, txOf(hit), self1, h.now.Add(3*time.Millisecond))
	if p := h.m.Path(peerA); p.Kind != Direct || p.Addr != hit.To || p.Aux != 0 {
		t.Fatalf("path %+v, want direct to %s", p, hit.To)
	}
	// With a direct path, requests are ignored.
	if more := h.m.HandleSpray(peerA, &disco.Spray{Addr: pubA.Addr(), Ports: SprayPorts}, h.now.Add(5*time.Second)); len(more) != 0 {
		t.Fatal("sprayed although a direct path works")
	}

	// Behind a symmetric NAT ourselves, spraying is useless.
	h2 := newHarness(t, Config{})
	h2.m.SetRelay(true)
	h2.m.SetSelf(Self{Endpoints: []netip.AddrPort{self1}, NAT: wire.NATSymmetric, At: h2.now})
	h2.m.SetPeers([]Peer{{Key: peerA, NAT: wire.NATSymmetric, Candidates: []Candidate{{Addr: pubA}}}}, h2.now)
	if out := h2.m.HandleSpray(peerA, &disco.Spray{Addr: pubA.Addr(), Ports: SprayPorts}, h2.now); len(out) != 0 {
		t.Fatal("sprayed from behind a symmetric NAT")
	}
}

// An attempt starts as soon as both NATs are known, whichever is learned last.
func TestSprayStartsWhenNATsAreKnown(t *testing.T) {
	h := newHarness(t, Config{})
	h.m.SetRelay(true)
	h.m.SetSelf(Self{Endpoints: []netip.AddrPort{symSelf}, At: h.now})
	out := h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}}}}, h.now)
	h.run(2500*time.Millisecond, func(_ time.Time, more []Send) { out = append(out, more...) })
	if len(sprays(out)) != 0 {
		t.Fatal("sprayed before either NAT was known")
	}
	out = h.m.SetPeers([]Peer{{Key: peerA, NAT: wire.NATEasy, Candidates: []Candidate{{Addr: pubA}}}}, h.now)
	if len(sprays(out)) != 0 {
		t.Fatal("sprayed before our own NAT was known")
	}
	h.m.SetSelf(Self{Endpoints: []netip.AddrPort{symSelf}, NAT: wire.NATSymmetric, At: h.now})
	h.now = h.now.Add(50 * time.Millisecond)
	if out := h.m.Tick(h.now); len(sprays(out)) != 1 {
		t.Fatal("no attempt on the next tick after our NAT turned out symmetric")
	}

	// The other order: our NAT first, the peer's from a later map update.
	h = newHarness(t, Config{})
	h.m.SetRelay(true)
	h.m.SetSelf(Self{Endpoints: []netip.AddrPort{symSelf}, NAT: wire.NATSymmetric, At: h.now})
	h.m.SetPeers([]Peer{{Key: peerA, Candidates: []Candidate{{Addr: pubA}}}}, h.now)
	h.run(2500*time.Millisecond, nil)
	if out := h.m.SetPeers([]Peer{{Key: peerA, NAT: wire.NATEasy, Candidates: []Candidate{{Addr: pubA}}}}, h.now); len(sprays(out)) != 1 {
		t.Fatal("no attempt when the map said the peer's NAT is easy")
	}
}

// Many peers at once do not open SprayPorts sockets each: at most maxSprayAttempts run,
// the others get their turn later.
func TestSprayAttemptsBounded(t *testing.T) {
	h := newHarness(t, Config{})
	h.m.SetRelay(true)
	h.m.SetSelf(Self{Endpoints: []netip.AddrPort{symSelf}, NAT: wire.NATSymmetric, At: h.now})
	var peers []Peer
	for i := range 5 {
		peers = append(peers, Peer{Key: wire.Key{byte(10 + i)}, NAT: wire.NATEasy,
			Candidates: []Candidate{{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(20 + i)}), 51820)}}})
	}
	sprayed := map[wire.Key]bool{}
	note := func(out []Send) {
		for _, s := range out {
			if _, ok := s.Msg.(*disco.Spray); ok {
				sprayed[s.Peer] = true
			}
		}
		if n := len(h.m.AuxSockets()); n > maxSprayAttempts*SprayPorts {
			t.Fatalf("%d aux sockets open at once", n)
		}
	}
	note(h.m.SetPeers(peers, h.now))
	if len(sprayed) != maxSprayAttempts {
		t.Fatalf("%d attempts at once, want %d", len(sprayed), maxSprayAttempts)
	}
	h.run(15*time.Second, func(_ time.Time, out []Send) { note(out) })
	if len(sprayed) != len(peers) {
		t.Fatalf("only %d of %d peers got an attempt", len(sprayed), len(peers))
	}
}

// When the current path dies, another address that has not answered since the dead path
// last did is no better evidence (after a roam every address of the old network looks
// like that): the relay carries the traffic until one answers again.
func TestLossDoesNotTrustStalePaths(t *testing.T) {
	h := newHarness(t, Config{OpenTTL: -1})
	h.m.SetRelay(true)
	h.m.SetSelf(Self{Endpoints: []netip.AddrPort{self1}})
	out := h.m.SetPeers([]Peer{{Key: peerA, NAT: wire.NATNone, Candidates: []Candidate{{Addr: pubA}, {Addr: pub2A}}}}, h.now)
	h.answer(out, 2*time.Millisecond, pubA)
	h.answer(out, 5*time.Millisecond, pub2A)
	h.wantPath(peerA, Direct, pubA)

	// Data flows; both answer for 3 s (pub2A only while the first burst asks), then the
	// network goes away.
	answering := true
	lost := time.Time{}
	h.run(8*time.Second, func(now time.Time, out []Send) {
		h.m.DataSent(peerA, now)
		if now.Sub(t0) > 3*time.Second {
			answering = false
		}
		if answering {
			h.answer(out, 2*time.Millisecond, pubA)
			h.answer(out, 5*time.Millisecond, pub2A) // while it is asked (the first burst)
		}
		if p := h.m.Path(peerA); lost.IsZero() && p.Addr != pubA {
			lost = now
		}
		if !lost.IsZero() && now.Sub(lost) < 100*time.Millisecond {
			if p := h.m.Path(peerA); p.Kind != Relay {
				t.Fatalf("at +%v, just after the loss: path %v %v, want the relay", now.Sub(t0), p.Kind, p.Addr)
			}
		}
		if !lost.IsZero() && now.Sub(lost) >= 100*time.Millisecond {
			h.answer(out, 5*time.Millisecond, pub2A) // pub2A answers again: it takes over
		}
	})
	if lost.IsZero() {
		t.Fatal("the silent path was never declared dead")
	}
	h.wantPath(peerA, Direct, pub2A)
}
