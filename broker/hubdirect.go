package broker

import (
	"errors"
	"slices"

	"github.com/weftmesh/weft/wire"
)

// Messages that are not differences of the account's devices: relay lists and punch
// requests, handed to streams as they are.

var (
	// errPunchNoPeer: the peer is not in the requester's map (unknown, another
	// account's, or hidden by the access policy); the caller cannot tell which.
	errPunchNoPeer = errors.New("no such peer in this device's map")
	// errPunchOffline: the peer has no live map stream to hear the punch on.
	errPunchOffline = errors.New("peer is offline")
)

// Broadcast sends u to every live stream of account.
func (h *Hub) Broadcast(account int64, u wire.MapUpdate) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a := h.accounts[account]
	if a == nil {
		return
	}
	var lagging []*Stream
	for _, s := range a.streams {
		if !trySend(s, u) {
			lagging = append(lagging, s)
		}
	}
	for _, s := range lagging {
		h.dropLocked(s, "")
	}
}

// LoadedAccounts lists the accounts the hub holds, in no particular order.
func (h *Hub) LoadedAccounts() []int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]int64, 0, len(h.accounts))
	for id := range h.accounts {
		out = append(out, id)
	}
	return out
}

// CanPunch reports whether Punch(account, from, to) would deliver: nil, errPunchNoPeer
// or errPunchOffline.
func (h *Hub) CanPunch(account int64, from, to string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.punchTargetLocked(account, from, to)
	return err
}

// Punch tells devices from and to of account to start probing each other now: to's
// stream gets {punch:[from]} and from's, if it has one, {punch:[to]}. Both must see
// each other in their maps; to must be online.
func (h *Hub) Punch(account int64, from, to string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	peer, err := h.punchTargetLocked(account, from, to)
	if err != nil {
		return err
	}
	a := h.accounts[account]
	var lagging []*Stream
	if !trySend(peer, wire.MapUpdate{Punch: []string{from}}) {
		lagging = append(lagging, peer)
	}
	if own := a.streams[from]; own != nil && !trySend(own, wire.MapUpdate{Punch: []string{to}}) {
		lagging = append(lagging, own)
	}
	for _, s := range lagging {
		h.dropLocked(s, "")
	}
	if slices.Contains(lagging, peer) {
		return errPunchOffline
	}
	return nil
}

// punchTargetLocked returns the stream a punch from from to to goes to.
func (h *Hub) punchTargetLocked(account int64, from, to string) (*Stream, error) {
	a := h.accounts[account]
	if a == nil {
		// Nobody in the account has a stream, so the peer cannot be online.
		return nil, errPunchOffline
	}
	_, okFrom := a.devices[from]
	_, okTo := a.devices[to]
	if !okFrom || !okTo || from == to || !a.view.Visible(from, to) || !a.view.Visible(to, from) {
		return nil, errPunchNoPeer
	}
	peer := a.streams[to]
	if peer == nil {
		return nil, errPunchOffline
	}
	return peer, nil
}

// trySend queues u on s, reporting false if s's buffer is full: the caller drops s
// rather than blocking everyone else.
func trySend(s *Stream, u wire.MapUpdate) bool {
	select {
	case s.updates <- u:
		return true
	default:
		return false
	}
}
