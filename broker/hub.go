package broker

import (
	"net/netip"
	"reflect"
	"sync"

	"github.com/weftmesh/weft/wire"
)

// streamBuffer is how many updates a stream may fall behind before the hub drops it;
// the device then reconnects and starts again from a full map.
const streamBuffer = 256

// View is what the account's access policy lets each device see: which peers are in its
// map, and its inbound packet filter. Filter also answers for virtual devices: their
// gateways enforce it for them.
type View interface {
	Visible(self, peer string) bool
	Filter(self string) wire.PacketFilter
}

// allowAll is the view of an account without a policy: everyone sees everyone, and
// nothing is filtered (zero configuration).
type allowAll struct{}

func (allowAll) Visible(string, string) bool     { return true }
func (allowAll) Filter(string) wire.PacketFilter { return wire.PacketFilter{DefaultAllow: true} }

// Hub holds each loaded account's devices and view, and keeps every live map stream in
// step with them: whenever the account changes, each stream gets exactly the difference
// between what it was last sent and what it should see now. It does no I/O.
type Hub struct {
	mu       sync.Mutex              // guards accounts and everything reachable from it
	accounts map[int64]*accountState // by account ID
}

type accountState struct {
	// devices are the account's devices and virtual devices by ID, Online not yet set;
	// virtual devices carry their LANIP, which only their gateway's view keeps.
	devices map[string]wire.Device
	view    View
	streams map[string]*Stream // the live stream of each device, by device ID
}

// NewHub returns a hub with no accounts.
func NewHub() *Hub {
	return &Hub{accounts: make(map[int64]*accountState)}
}

// Stream is one device's subscription to its account's map. Read Updates until Done
// is closed; then Revoked says whether the device was revoked, and why.
type Stream struct {
	account int64
	id      string
	key     wire.Key // the key the stream authenticated with
	updates chan wire.MapUpdate
	done    chan struct{}

	// The fields below are guarded by Hub.mu: what the stream was last sent.
	self    wire.Device
	peers   map[string]wire.Device
	filter  *wire.PacketFilter // nil until the first map
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

// Loaded reports whether the hub holds account's devices.
func (h *Hub) Loaded(account int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.accounts[account] != nil
}

// SetAccount replaces what the hub knows of account — every device and the policy view
// (nil means allow-all) — and sends each live stream what changed for it.
func (h *Hub) SetAccount(account int64, devices []wire.Device, view View) {
	if view == nil {
		view = allowAll{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	a := h.accounts[account]
	if a == nil {
		a = &accountState{streams: make(map[string]*Stream)}
		h.accounts[account] = a
	}
	a.devices = make(map[string]wire.Device, len(devices))
	for _, d := range devices {
		a.devices[d.ID] = d
	}
	a.view = view
	h.syncLocked(a)
}

// Subscribe opens the map stream of device id (authenticated with key) in a loaded
// account and returns it with the device's full map. It ends any earlier stream of the
// same device and tells the device's peers it is online.
func (h *Hub) Subscribe(account int64, id string, key wire.Key) (*Stream, wire.MapUpdate, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a := h.accounts[account]
	if a == nil {
		return nil, wire.MapUpdate{}, false
	}
	if _, ok := a.devices[id]; !ok {
		return nil, wire.MapUpdate{}, false
	}
	s := &Stream{account: account, id: id, key: key, peers: map[string]wire.Device{},
		updates: make(chan wire.MapUpdate, streamBuffer), done: make(chan struct{})}
	if old := a.streams[id]; old != nil {
		h.endLocked(old, "")
	}
	a.streams[id] = s
	full := h.diffLocked(a, s)
	full.Full = true
	if full.Peers == nil {
		full.Peers = []wire.Device{}
	}
	h.syncLocked(a) // peers learn this device is online
	return s, full, true
}

// Unsubscribe closes s. If it was still the device's live stream, the device's peers
// learn it is offline. Calling it again, or on a replaced stream, does nothing.
func (h *Hub) Unsubscribe(s *Stream) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropLocked(s, "")
}

// End ends the live stream of device id, telling it reason (it was removed). Its peers
// learn of the removal from the SetAccount that follows.
func (h *Hub) End(account int64, id, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if a := h.accounts[account]; a != nil {
		if s := a.streams[id]; s != nil {
			delete(a.streams, id)
			h.endLocked(s, reason)
		}
	}
}

// Revoke ends the stream of device id if it was opened with key, which no longer
// belongs to the device, telling it reason.
func (h *Hub) Revoke(account int64, id string, key wire.Key, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if a := h.accounts[account]; a != nil {
		if s := a.streams[id]; s != nil && s.key == key {
			delete(a.streams, id)
			h.endLocked(s, reason)
		}
	}
}

// Online reports whether device id of account has a live stream.
func (h *Hub) Online(account int64, id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	a := h.accounts[account]
	return a != nil && a.streams[id] != nil
}

// dropLocked ends s and, if it was the device's live stream, announces it offline.
func (h *Hub) dropLocked(s *Stream, reason string) {
	h.endLocked(s, reason)
	a := h.accounts[s.account]
	if a == nil || a.streams[s.id] != s {
		return
	}
	delete(a.streams, s.id)
	h.syncLocked(a)
}

// endLocked closes s's Done once, recording reason.
func (h *Hub) endLocked(s *Stream, revoked string) {
	if s.ended {
		return
	}
	s.ended, s.revoked = true, revoked
	close(s.done)
}

// syncLocked sends every live stream of a what changed for it. A stream whose buffer is
// full is dropped (and announced offline) rather than blocking everyone else.
func (h *Hub) syncLocked(a *accountState) {
	var lagging []*Stream
	for _, s := range a.streams {
		u := h.diffLocked(a, s)
		if u.Self == nil && u.Peers == nil && u.Removed == nil && u.Filter == nil {
			continue
		}
		select {
		case s.updates <- u:
		default:
			lagging = append(lagging, s)
		}
	}
	for _, s := range lagging {
		h.dropLocked(s, "")
	}
}

// diffLocked computes what s must be sent to see the account as it is now, and records
// that as sent.
func (h *Hub) diffLocked(a *accountState, s *Stream) wire.MapUpdate {
	var u wire.MapUpdate
	if self, ok := a.devices[s.id]; ok {
		self = a.viewOf(s.id, self)
		if !reflect.DeepEqual(self, s.self) {
			s.self = self
			u.Self = &self
		}
	}
	for id, d := range a.devices {
		if id == s.id || !a.view.Visible(s.id, id) {
			continue
		}
		d = a.viewOf(s.id, d)
		if old, ok := s.peers[id]; !ok || !reflect.DeepEqual(old, d) {
			s.peers[id] = d
			u.Peers = append(u.Peers, d)
		}
	}
	for id := range s.peers {
		if _, ok := a.devices[id]; !ok || !a.view.Visible(s.id, id) {
			delete(s.peers, id)
			u.Removed = append(u.Removed, id)
		}
	}
	if f := a.view.Filter(s.id); s.filter == nil || !reflect.DeepEqual(f, *s.filter) {
		s.filter = &f
		u.Filter = &f
	}
	sortDevices(u.Peers)
	sortStrings(u.Removed)
	return u
}

// viewOf is d as device viewer sees it. Online comes from the live streams: a virtual
// device is online while its gateway is. A virtual device's LAN address and inbound
// filter are its gateway's business only; everyone else gets neither.
func (a *accountState) viewOf(viewer string, d wire.Device) wire.Device {
	host := d.ID
	if d.Kind == wire.KindVirtual {
		host = d.Gateway
		if d.Gateway == viewer {
			f := a.view.Filter(d.ID)
			d.VirtualFilter = &f
		} else {
			d.LANIP, d.VirtualFilter = netip.Addr{}, nil
		}
	}
	d.Online = a.streams[host] != nil
	return d
}
