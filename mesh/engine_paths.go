package mesh

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"syscall"
	"time"

	"github.com/weftmesh/weft/mesh/bind"
	"github.com/weftmesh/weft/mesh/disco"
	"github.com/weftmesh/weft/mesh/paths"
	"github.com/weftmesh/weft/wire"
)

// Path loop timing: fast while the path manager has something due soon (a burst, a path
// under check, data flowing), slow otherwise, so an idle device does not wake 20 times a
// second.
const (
	busyTick = 50 * time.Millisecond
	idleTick = time.Second
)

// stunFresh: a STUN answer this recent was measured on the network Rebind is told of (the
// service checks STUN, then rebinds when the mapping moved), so Rebind keeps it: peers
// must learn the new mapping at once to open their NATs to it.
const stunFresh = 5 * time.Second

// pathState is the engine's side of path selection, guarded by Engine.pmu.
type pathState struct {
	relayUp   bool   // the path manager was last told a relay is connected
	relayName string // the connected relay's name, for "relay NAME"
	lastSent  map[wire.Key]time.Time
	logged    map[wire.Key]paths.Path // the path last logged per peer
	localEPs  []netip.AddrPort        // this host's addresses with the WireGuard port
	stunEPs   []netip.AddrPort        // public mappings STUN reported
	stunAt    time.Time               // when STUN last reported them
	nat       string                  // a wire.NAT* value, from the last STUN run
	mapped    netip.AddrPort          // the gateway's port mapping to our socket (PCP, NAT-PMP); invalid: none
}

func (s *pathState) init() {
	s.lastSent = map[wire.Key]time.Time{}
	s.logged = map[wire.Key]paths.Path{}
}

// discoEvent is an authenticated disco message on its way to the path loop.
type discoEvent struct {
	sender wire.Key
	via    netip.AddrPort // invalid: through the relay
	aux    uint32         // the aux socket it came in on; 0: the WireGuard socket
	msg    disco.Message
	at     time.Time
}

// onDisco runs on a receive goroutine: it authenticates the packet (strangers and forgeries
// get no answer) and hands the message to the path loop.
func (e *Engine) onDisco(src bind.Source, pkt []byte) {
	sender, msg, err := e.codec.Open(pkt, e.isPeer)
	if err != nil {
		return
	}
	if !src.Addr.IsValid() && sender != src.Relay {
		return // the relay says one peer sent it, the packet says another
	}
	select {
	case e.events <- discoEvent{sender: sender, via: src.Addr, aux: src.Aux, msg: msg, at: time.Now()}:
	default: // the loop is behind; disco is retried on a schedule anyway
	}
}

func (e *Engine) isPeer(k wire.Key) bool { return (*e.peerSet.Load())[k] }

// pathLoop runs the path manager's clock and its disco input until ctx ends.
func (e *Engine) pathLoop(ctx context.Context) {
	defer close(e.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-e.events:
			e.handle(ev)
		case <-e.wake:
		case <-timer.C:
		}
		next := idleTick
		if e.tick() {
			next = busyTick
		}
		timer.Reset(next)
	}
}

// poke makes the path loop tick now (and pick its pace again).
func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Engine) handle(ev discoEvent) {
	e.pmu.Lock()
	var out []paths.Send
	switch m := ev.msg.(type) {
	case *disco.Ping:
		out = e.paths.HandlePingAux(ev.sender, ev.via, ev.aux, m.TxID, ev.at)
	case *disco.Pong:
		out = e.paths.HandlePongAux(ev.sender, ev.via, ev.aux, m.TxID, m.Src, ev.at)
	case *disco.CallMeMaybe:
		out = e.paths.HandleCallMeMaybe(ev.sender, m.Endpoints, m.Opened, ev.at)
	case *disco.Spray:
		if !ev.via.IsValid() { // only the relay carries spray requests
			out = e.paths.HandleSpray(ev.sender, m, ev.at)
		}
	}
	e.applyLocked()
	e.pmu.Unlock()
	e.sendAll(out)
}

// tick feeds the path manager the time, the relay's state and which peers WireGuard sent
// data to, and reports whether it is busy.
func (e *Engine) tick() bool {
	now := time.Now()
	up, name := e.relayStatus()
	e.pmu.Lock()
	if up != e.ps.relayUp || name != e.ps.relayName {
		e.ps.relayUp, e.ps.relayName = up, name
		e.paths.SetRelay(up)
	}
	for k := range *e.peerSet.Load() {
		if t := e.bind.Peer(k).LastSend(); t.After(e.ps.lastSent[k]) {
			e.ps.lastSent[k] = t
			e.paths.DataSent(k, t)
		}
	}
	out := e.paths.Tick(now)
	e.applyLocked()
	busy := e.paths.Busy()
	e.pmu.Unlock()
	e.sendAll(out)
	return busy
}

// applyLocked hands the bind the routes of peers whose path changed, and the map of
// addresses to peers. The caller holds pmu.
func (e *Engine) applyLocked() {
	if err := e.bind.SetAux(e.paths.AuxSockets()); err != nil {
		e.log.Warn("birthday probing: aux sockets", "err", err)
	}
	changed := e.paths.TakeChanged()
	if len(changed) == 0 {
		return
	}
	set := *e.peerSet.Load()
	for _, k := range changed {
		if !set[k] {
			e.bind.RemovePeer(k)
			delete(e.ps.lastSent, k)
			delete(e.ps.logged, k)
			continue
		}
		e.bind.SetRoute(k, e.routeLocked(k))
		if p, old := e.paths.Path(k), e.ps.logged[k]; p.Kind != old.Kind || p.Addr != old.Addr {
			e.ps.logged[k] = p
			e.log.Info("peer path", "peer", k, "path", p.Kind, "addr", p.Addr, "aux", p.Aux, "rtt", p.RTT, "reason", e.paths.Reason(k))
			if isDirect(old.Kind) && !isDirect(p.Kind) {
				select {
				case e.lost <- struct{}{}:
				default:
				}
			}
		}
	}
	e.bind.SetAddrs(e.addrsLocked(set))
}

// routeLocked is the bind's route for the peer's path. With no path (nothing answered
// yet, no relay) the bind holds WireGuard's first packets until one comes: sending them to
// unconfirmed addresses would be unsolicited traffic, which some NATs punish (docs
// /NAT-TRAVERSAL.md, "NAT traps handled").
func isDirect(k paths.Kind) bool { return k == paths.Direct || k == paths.DirectLAN }

// PathLost delivers a signal (coalesced) each time a peer's direct path stops answering,
// or the relay session does (engine_relay.go): a hint that this device may have moved
// without noticing (its router renumbered, a NAT forgot its mappings), for the service to
// check its public mapping (STUN) at once rather than at its next scheduled check.
func (e *Engine) PathLost() <-chan struct{} { return e.lost }

func (e *Engine) routeLocked(k wire.Key) bind.Route {
	p := e.paths.Path(k)
	switch p.Kind {
	case paths.Direct, paths.DirectLAN:
		return bind.Route{Direct: p.Addr, Aux: p.Aux}
	case paths.Relay:
		return bind.Route{Relay: true}
	}
	return bind.Route{}
}

// addrsLocked maps every candidate address to its peer, so WireGuard packets from it are
// attributed to the peer. An address two peers claim goes to the one it answered for;
// if neither or both, to nobody.
func (e *Engine) addrsLocked(set map[wire.Key]bool) map[netip.AddrPort]wire.Key {
	type claim struct {
		key       wire.Key
		rank      int
		ambiguous bool
	}
	claims := map[netip.AddrPort]claim{}
	for k := range set {
		for _, c := range e.paths.Candidates(k) {
			if c.Aux != 0 {
				continue // an aux socket's packets are its peer's anyway
			}
			rank := 1
			if c.Confirmed {
				rank = 2
			}
			old, ok := claims[c.Addr]
			switch {
			case !ok || rank > old.rank:
				claims[c.Addr] = claim{key: k, rank: rank}
			case rank == old.rank && old.key != k:
				old.ambiguous = true
				claims[c.Addr] = old
			}
		}
	}
	out := make(map[netip.AddrPort]wire.Key, len(claims))
	for a, c := range claims {
		if !c.ambiguous {
			out[a] = c.key
		}
	}
	return out
}

// sendAll seals and sends disco messages: direct ones from the WireGuard socket, the
// others through the relay. A ping that cannot leave on a peer's current path (no route
// any more, as after a network change) drops that path at once.
func (e *Engine) sendAll(out []paths.Send) {
	var failed []paths.Send
	for _, s := range out {
		pkt, err := e.codec.Seal(s.Peer, s.Msg)
		if err != nil {
			e.log.Debug("seal disco message", "peer", s.Peer, "err", err)
			continue
		}
		switch {
		case !s.To.IsValid():
			err = e.bind.SendRelay(s.Peer, pkt)
		case s.Aux != 0:
			err = e.bind.SendAux(s.Aux, s.To, pkt, s.TTL)
		default:
			err = e.bind.SendTo(s.To, pkt, s.TTL)
		}
		switch {
		case err == nil:
		case s.TTL > 0 && errors.Is(err, errors.ErrUnsupported):
			// No per-packet TTL here: the probe is skipped; the real pings follow.
		case errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH):
			failed = append(failed, s)
		default:
			e.log.Debug("send disco message", "peer", s.Peer, "to", s.To, "err", err)
		}
	}
	if len(failed) == 0 {
		return
	}
	now := time.Now()
	var more []paths.Send
	e.pmu.Lock()
	for _, s := range failed {
		if _, ok := s.Msg.(*disco.Ping); ok && e.paths.Path(s.Peer).Addr == s.To {
			more = append(more, e.paths.PathFailed(s.Peer, now)...)
		}
	}
	e.applyLocked()
	e.pmu.Unlock()
	e.sendAll(more)
}

// refreshSelf re-reads this host's addresses and tells the path manager what to advertise.
func (e *Engine) refreshSelf() {
	local := LocalEndpoints(e.port, e.mesh)
	e.pmu.Lock()
	e.ps.localEPs = local
	e.setSelfLocked()
	e.pmu.Unlock()
}

func (e *Engine) setSelfLocked() {
	eps := slices.Clone(e.ps.localEPs)
	for _, a := range append([]netip.AddrPort{e.ps.mapped}, e.ps.stunEPs...) {
		if a.IsValid() && !slices.Contains(eps, a) {
			eps = append(eps, a)
		}
	}
	e.paths.SetSelf(paths.Self{Endpoints: eps, NAT: e.natLocked(), At: e.ps.stunAt})
}

// natLocked is the NAT behaviour peers should assume: what STUN measured, unless the
// gateway maps a public port to our socket, which takes unsolicited packets like an
// address without NAT would (where STUN saw no NAT, or no UDP, the mapping changes nothing).
func (e *Engine) natLocked() string {
	if e.ps.mapped.IsValid() && e.ps.nat != wire.NATNone && e.ps.nat != wire.NATUDPBlocked {
		return wire.NATMapped
	}
	return e.ps.nat
}

// SetPortMapping tells the engine the public address the default gateway forwards to its
// socket (service: PCP or NAT-PMP, mesh/portmap); invalid when there is none. It is
// advertised first among the public endpoints, and the NAT reported as wire.NATMapped.
func (e *Engine) SetPortMapping(ext netip.AddrPort) {
	e.pmu.Lock()
	if ext == e.ps.mapped {
		e.pmu.Unlock()
		return
	}
	e.ps.mapped = ext
	e.setSelfLocked()
	e.pmu.Unlock()
	e.poke()
}

// Punch starts probing the peer with key now, as the broker asks both sides to at once.
func (e *Engine) Punch(key wire.Key) {
	e.pmu.Lock()
	out := e.paths.Punch(key, time.Now())
	e.applyLocked()
	e.pmu.Unlock()
	e.sendAll(out)
	e.poke()
}

// Rebind re-probes every peer after this device's network changed (the socket stays):
// paths that no longer answer are dropped within paths.DeadAfter, new ones are found, and
// the relay connection is re-made from the new network. Call STUN again afterwards to
// learn the new public mapping.
func (e *Engine) Rebind() {
	local := LocalEndpoints(e.port, e.mesh)
	e.pmu.Lock()
	e.ps.localEPs = local
	if time.Since(e.ps.stunAt) > stunFresh {
		e.ps.stunEPs, e.ps.nat = nil, wire.NATUnknown
	}
	e.setSelfLocked()
	out := e.paths.Rebind(time.Now())
	e.applyLocked()
	e.pmu.Unlock()
	e.sendAll(out)
	e.reconnectRelay()
	e.poke()
}

// Reflexive lists this device's public mappings as learned: from STUN and from what peers
// saw its pings come from. The service reports them to the broker.
func (e *Engine) Reflexive() []netip.AddrPort {
	e.pmu.Lock()
	defer e.pmu.Unlock()
	var out []netip.AddrPort
	if e.ps.mapped.IsValid() {
		out = append(out, e.ps.mapped)
	}
	for _, a := range append(slices.Clone(e.ps.stunEPs), e.paths.Reflexive()...) {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// NAT is what the last STUN run found out about this device's NAT (a wire.NAT* value),
// or wire.NATMapped while a port mapping forwards a public port to the socket.
func (e *Engine) NAT() string {
	e.pmu.Lock()
	defer e.pmu.Unlock()
	return e.natLocked()
}
