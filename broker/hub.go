package broker

import (
	"sync"

	"github.com/weftmesh/weft/wire"
)

// streamBuffer is how many updates a stream may fall behind before the hub drops it;
// the device then reconnects and starts again from a full map.
const streamBuffer = 256

// Hub fans out changes to each account's devices to that account's live map streams,
// and knows which devices are online (have a live stream). It does no I/O.
type Hub struct {
	mu sync.Mutex
	// streams holds the live stream of each device, by account ID then device ID;
	// guarded by mu. A device has at most one: a new one replaces the old.
	streams map[int64]map[string]*Stream
}

// NewHub returns a hub with no streams.
func NewHub() *Hub {
	return &Hub{streams: make(map[int64]map[string]*Stream)}
}

// Stream is one device's subscription to its account's map. Read Updates until Done
// is closed; then Revoked says whether the device was revoked, and why.
type Stream struct {
	account int64
	id      string
	key     wire.Key // the key the stream authenticated with
	updates chan wire.MapUpdate
	done    chan struct{}

	// The fields below are guarded by Hub.mu.
	self    wire.Device // the device's current record, for telling peers it went offline
	ended   bool
	revoked string
}

// Updates delivers the deltas for this device, in order.
func (s *Stream) Updates() <-chan wire.MapUpdate { return s.updates }

// Done is closed when the stream must end: the device was revoked or removed, another
// stream replaced this one, or it fell too far behind.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Revoked is the reason the device was revoked, or "" if the stream ended for
// another reason. Call it after Done is closed.
func (h *Hub) Revoked(s *Stream) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return s.revoked
}

// Subscribe opens the map stream of device self in account. It ends any earlier
// stream of the same device and, if the device was offline, tells its peers it is online.
func (h *Hub) Subscribe(account int64, self wire.Device) *Stream {
	self.Online = true
	s := &Stream{account: account, id: self.ID, key: self.PublicKey, self: self,
		updates: make(chan wire.MapUpdate, streamBuffer), done: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	acct := h.streams[account]
	if acct == nil {
		acct = make(map[string]*Stream)
		h.streams[account] = acct
	}
	old := acct[self.ID]
	acct[self.ID] = s
	if old != nil {
		h.endLocked(old, "")
		return s // it was online already: peers need no news
	}
	h.fanoutLocked(account, func(st *Stream) (wire.MapUpdate, bool) {
		if st == s {
			return wire.MapUpdate{}, false
		}
		return wire.MapUpdate{Peers: []wire.Device{self}}, true
	})
	return s
}

// Unsubscribe closes s. If it was still the device's live stream, the device's peers
// learn it is offline. Calling it again, or on a replaced stream, does nothing.
func (h *Hub) Unsubscribe(s *Stream) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropLocked(s)
}

// dropLocked ends s and, if it was the device's live stream, announces it offline.
func (h *Hub) dropLocked(s *Stream) {
	acct := h.streams[s.account]
	current := acct[s.id] == s
	h.endLocked(s, "")
	if !current {
		return
	}
	delete(acct, s.id)
	if len(acct) == 0 {
		delete(h.streams, s.account)
	}
	off := s.self
	off.Online = false
	h.fanoutLocked(s.account, func(*Stream) (wire.MapUpdate, bool) {
		return wire.MapUpdate{Peers: []wire.Device{off}}, true
	})
}

// Publish announces that device d of account was added or changed: its own stream
// gets it as Self, every other stream as a changed peer. d.Online is set by the hub.
func (h *Hub) Publish(account int64, d wire.Device) {
	h.mu.Lock()
	defer h.mu.Unlock()
	own := h.streams[account][d.ID]
	d.Online = own != nil
	if own != nil {
		own.self = d
	}
	h.fanoutLocked(account, func(st *Stream) (wire.MapUpdate, bool) {
		if st == own {
			self := d
			return wire.MapUpdate{Self: &self}, true
		}
		return wire.MapUpdate{Peers: []wire.Device{d}}, true
	})
}

// Remove announces that device id left account: peers drop it and its own stream
// ends with revoked set to reason.
func (h *Hub) Remove(account int64, id, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if own := h.streams[account][id]; own != nil {
		delete(h.streams[account], id)
		h.endLocked(own, reason)
	}
	h.fanoutLocked(account, func(*Stream) (wire.MapUpdate, bool) {
		return wire.MapUpdate{Removed: []string{id}}, true
	})
}

// Revoke ends the stream of device id if it was opened with key, which no longer
// belongs to the device, telling it reason. Peers learn the new key from the
// Publish that follows.
func (h *Hub) Revoke(account int64, id string, key wire.Key, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	acct := h.streams[account]
	if own := acct[id]; own != nil && own.key == key {
		delete(acct, id)
		h.endLocked(own, reason)
	}
}

// Online reports whether device id of account has a live stream.
func (h *Hub) Online(account int64, id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.streams[account][id] != nil
}

// endLocked closes s's Done once, recording reason.
func (h *Hub) endLocked(s *Stream, revoked string) {
	if s.ended {
		return
	}
	s.ended, s.revoked = true, revoked
	close(s.done)
}

// fanoutLocked sends msg(st) to every stream of account for which it returns true.
// A stream whose buffer is full is dropped (and announced offline) rather than
// blocking everyone else.
func (h *Hub) fanoutLocked(account int64, msg func(*Stream) (wire.MapUpdate, bool)) {
	var lagging []*Stream
	for _, st := range h.streams[account] {
		u, ok := msg(st)
		if !ok {
			continue
		}
		select {
		case st.updates <- u:
		default:
			lagging = append(lagging, st)
		}
	}
	for _, st := range lagging {
		h.dropLocked(st)
	}
}
