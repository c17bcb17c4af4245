package mesh

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/weftmesh/weft/mesh/stun"
	"github.com/weftmesh/weft/wire"
)

// stunRetry is how often unanswered binding requests are sent again.
const stunRetry = 500 * time.Millisecond

// stunAnswer is a binding response on its way to the STUN call waiting for it.
type stunAnswer struct {
	tx     stun.TxID
	from   netip.AddrPort
	mapped netip.AddrPort
}

// onSTUN runs on a receive goroutine: a response to one of our requests goes to the call
// waiting for it; anything else is dropped.
func (e *Engine) onSTUN(src netip.AddrPort, pkt []byte) {
	tx, mapped, err := stun.ParseResponse(pkt)
	if err != nil {
		return
	}
	e.stunMu.Lock()
	ch := e.stunWait[tx]
	e.stunMu.Unlock()
	if ch != nil {
		select {
		case ch <- stunAnswer{tx: tx, from: src, mapped: mapped}:
		default:
		}
	}
}

// STUN sends binding requests to servers from the WireGuard socket (so the mappings are
// WireGuard's), resending every half second, until each answered or ctx ends. mapped[i]
// is this device's address as servers[i] saw it, invalid if it did not answer. It fails
// only when no server answered. The answers also tell the path manager this device's
// public endpoints and NAT behaviour (see NAT).
func (e *Engine) STUN(ctx context.Context, servers []netip.AddrPort) (mapped []netip.AddrPort, err error) {
	if len(servers) == 0 {
		return nil, errors.New("mesh: STUN: no servers")
	}
	servers = slices.Clone(servers)
	ch := make(chan stunAnswer, 4*len(servers))
	index := make(map[stun.TxID]int, len(servers))
	reqs := make([][]byte, len(servers))
	for i := range servers {
		servers[i] = netip.AddrPortFrom(servers[i].Addr().Unmap(), servers[i].Port())
		tx, req := stun.Request()
		index[tx], reqs[i] = i, req
	}
	e.stunMu.Lock()
	for tx := range index {
		e.stunWait[tx] = ch
	}
	e.stunMu.Unlock()
	defer func() {
		e.stunMu.Lock()
		for tx := range index {
			delete(e.stunWait, tx)
		}
		e.stunMu.Unlock()
	}()

	mapped = make([]netip.AddrPort, len(servers))
	send := func() {
		for i, s := range servers {
			if !mapped[i].IsValid() {
				if err := e.bind.SendTo(s, reqs[i], 0); err != nil {
					e.log.Debug("STUN request", "server", s, "err", err)
				}
			}
		}
	}
	retry := time.NewTicker(stunRetry)
	defer retry.Stop()
	send()
	left := len(servers)
wait:
	for left > 0 {
		select {
		case a := <-ch:
			i := index[a.tx]
			if a.from == servers[i] && !mapped[i].IsValid() {
				mapped[i] = netip.AddrPortFrom(a.mapped.Addr().Unmap(), a.mapped.Port())
				left--
			}
		case <-retry.C:
			send()
		case <-ctx.Done():
			break wait
		}
	}
	e.noteSTUN(mapped, ctx.Err())
	if left == len(servers) {
		return mapped, fmt.Errorf("mesh: no STUN server answered: %w", ctx.Err())
	}
	return mapped, nil
}

// noteSTUN records what a STUN run found: the public endpoints, and the NAT behaviour
// when the answers tell it.
func (e *Engine) noteSTUN(mapped []netip.AddrPort, ctxErr error) {
	var got []netip.AddrPort
	for _, m := range mapped {
		if m.IsValid() && !slices.Contains(got, m) {
			got = append(got, m)
		}
	}
	answered := 0
	for _, m := range mapped {
		if m.IsValid() {
			answered++
		}
	}
	e.pmu.Lock()
	defer e.pmu.Unlock()
	nat := e.ps.nat
	switch {
	case answered == 0 && errors.Is(ctxErr, context.DeadlineExceeded):
		nat = wire.NATUDPBlocked
	case answered == 0:
		// Cancelled: nothing learned.
	case slices.ContainsFunc(got, func(a netip.AddrPort) bool { return slices.Contains(e.ps.localEPs, a) }):
		nat = wire.NATNone
	case answered >= 2 && len(got) == 1:
		nat = wire.NATEasy
	case len(got) >= 2:
		nat = wire.NATSymmetric
	}
	e.ps.nat = nat
	if len(got) > 0 {
		e.ps.stunEPs, e.ps.stunAt = got, time.Now()
	}
	e.setSelfLocked()
}
