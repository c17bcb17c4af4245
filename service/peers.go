package service

import (
	"cmp"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/weftmesh/weft/mesh"
	"github.com/weftmesh/weft/wire"
)

// persistentKeepalive keeps NAT mappings open towards every peer.
const persistentKeepalive = 25 * time.Second

// meshRange is the overlay's address range; every mesh address is inside it.
var meshRange = netip.MustParsePrefix("100.64.0.0/10")

// PeerMap is the device's view of its peers, built from the broker's map messages.
// It does no I/O; the zero value is an empty map that has seen no full map.
type PeerMap struct {
	// Complete is set once a full map arrived (or a saved one was loaded).
	Complete bool
	peers    map[string]wire.Device // by device ID
	filter   *wire.PacketFilter     // the inbound filter; nil until the broker sent one
	relays   []wire.RelayInfo       // the relays to use, as the broker last listed them
	stun     []string               // the broker's STUN servers, HOST:PORT
}

// LoadPeerMap rebuilds a map from its saved form.
func LoadPeerMap(s SavedMap) PeerMap {
	m := PeerMap{Complete: s.Complete, filter: s.Filter, relays: s.Relays, stun: s.STUN}
	for _, p := range s.Peers {
		m.set(p)
	}
	return m
}

// Saved returns the map in the form kept in state.json.
func (m *PeerMap) Saved() SavedMap {
	return SavedMap{Complete: m.Complete, Peers: m.List(), Filter: m.filter, Relays: m.relays, STUN: m.stun}
}

// Relays are the relays the broker last listed.
func (m *PeerMap) Relays() []wire.RelayInfo { return m.relays }

// STUN are the broker's STUN servers.
func (m *PeerMap) STUN() []string { return m.stun }

// ApplyTraversal takes the relay and STUN lists of a map message, if it has them, and
// reports whether the relays changed.
func (m *PeerMap) ApplyTraversal(u wire.MapUpdate) (relaysChanged bool) {
	if u.STUN != nil {
		m.stun = slices.Clone(u.STUN)
	}
	if u.Relays != nil && !reflect.DeepEqual(u.Relays, m.relays) {
		m.relays = slices.Clone(u.Relays)
		return true
	}
	return false
}

// Filter is the inbound packet filter to enforce. Before the broker ever sent one it
// denies everything: a device fails closed until it knows its policy.
func (m *PeerMap) Filter() wire.PacketFilter {
	if m.filter == nil {
		return wire.PacketFilter{}
	}
	return *m.filter
}

// ApplyFilter takes the filter of a map message, if it has one, and reports whether the
// filter to enforce changed.
func (m *PeerMap) ApplyFilter(u wire.MapUpdate) bool {
	if u.Filter == nil || (m.filter != nil && reflect.DeepEqual(*m.filter, *u.Filter)) {
		return false
	}
	f := *u.Filter
	m.filter = &f
	return true
}

func (m *PeerMap) set(p wire.Device) {
	if m.peers == nil {
		m.peers = map[string]wire.Device{}
	}
	m.peers[p.ID] = p
}

// Apply folds one map message in and reports whether the peer set changed. A full map
// replaces every peer; a delta adds or changes peers by ID (a changed key replaces the
// old key with it) and drops Removed IDs. Self and keepalives leave peers alone.
func (m *PeerMap) Apply(u wire.MapUpdate) (changed bool) {
	if u.Full {
		old := m.peers
		m.peers = nil
		for _, p := range u.Peers {
			m.set(p)
		}
		changed = !m.Complete || !equalPeers(old, m.peers)
		m.Complete = true
		return changed
	}
	for _, p := range u.Peers {
		if cur, ok := m.peers[p.ID]; !ok || !equalDevice(cur, p) {
			m.set(p)
			changed = true
		}
	}
	for _, id := range u.Removed {
		if _, ok := m.peers[id]; ok {
			delete(m.peers, id)
			changed = true
		}
	}
	return changed
}

// ByID returns the peer with device ID id.
func (m *PeerMap) ByID(id string) (wire.Device, bool) {
	p, ok := m.peers[id]
	return p, ok
}

// Clear drops every peer, as when the device is removed.
func (m *PeerMap) Clear() { *m = PeerMap{} }

// Len is the number of peers.
func (m *PeerMap) Len() int { return len(m.peers) }

// List returns the peers sorted by name (then ID).
func (m *PeerMap) List() []wire.Device {
	out := make([]wire.Device, 0, len(m.peers))
	for _, p := range m.peers {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b wire.Device) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// Find resolves a peer by name, FQDN or mesh IP; names compare case-insensitively and
// a trailing dot is ignored.
func (m *PeerMap) Find(q string) (wire.Device, bool) {
	q = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(q)), ".")
	if q == "" {
		return wire.Device{}, false
	}
	ip, ipErr := netip.ParseAddr(q)
	for _, p := range m.List() {
		switch {
		case ipErr == nil && p.Address == ip,
			strings.ToLower(p.Name) == q,
			p.FQDN != "" && strings.TrimSuffix(strings.ToLower(p.FQDN), ".") == q:
			return p, true
		}
	}
	return wire.Device{}, false
}

// WGPeers is the WireGuard configuration for the peers: each peer's mesh address as its
// allowed IP, with the networks in extra for its key (routes.go: the virtual devices it
// hosts, the routes this device sends through it), and an endpoint chosen by
// ChooseEndpoint. local lists this host's connected subnets. Peers without a key or a mesh address are left out, and so is a
// second peer claiming a key already used (the broker never sends one; a stale map
// could).
func (m *PeerMap) WGPeers(local []netip.Prefix, extra map[wire.Key][]netip.Prefix) []mesh.Peer {
	out := make([]mesh.Peer, 0, len(m.peers))
	seen := map[wire.Key]bool{}
	for _, p := range m.List() {
		if p.PublicKey.IsZero() || !p.Address.IsValid() || seen[p.PublicKey] {
			continue
		}
		seen[p.PublicKey] = true
		out = append(out, mesh.Peer{
			PublicKey:           p.PublicKey,
			AllowedIPs:          append([]netip.Prefix{netip.PrefixFrom(p.Address, p.Address.BitLen())}, extra[p.PublicKey]...),
			Endpoint:            ChooseEndpoint(p.Endpoints, local),
			Candidates:          candidates(p.Endpoints),
			NAT:                 p.NAT,
			PersistentKeepalive: persistentKeepalive,
		})
	}
	return out
}

// candidates labels a peer's endpoints for path selection. The broker lists the address it
// observed first, then the peer's public (reflexive) mappings, then the addresses of its
// own interfaces; private addresses can only be LAN paths.
func candidates(eps []netip.AddrPort) []mesh.Candidate {
	out := make([]mesh.Candidate, 0, len(eps))
	for i, ep := range eps {
		if !ep.IsValid() {
			continue
		}
		kind := mesh.CandidateReflexive
		switch a := ep.Addr().Unmap(); {
		case a.IsPrivate() || a.IsLinkLocalUnicast():
			kind = mesh.CandidateLAN
		case i == 0:
			kind = mesh.CandidatePublic
		}
		out = append(out, mesh.Candidate{Addr: ep, Kind: kind})
	}
	return out
}

// ChooseEndpoint picks, from a peer's candidates, the first one inside one of this host's
// connected subnets (the peer is on the same LAN), else the first one (the public
// address the broker observed). It returns the zero value when there is no valid candidate.
func ChooseEndpoint(candidates []netip.AddrPort, local []netip.Prefix) netip.AddrPort {
	var first netip.AddrPort
	for _, c := range candidates {
		if !c.IsValid() {
			continue
		}
		if !first.IsValid() {
			first = c
		}
		for _, l := range local {
			if l.Contains(c.Addr().Unmap()) {
				return c
			}
		}
	}
	return first
}

func equalPeers(a, b map[string]wire.Device) bool {
	if len(a) != len(b) {
		return false
	}
	for id, p := range a {
		q, ok := b[id]
		if !ok || !equalDevice(p, q) {
			return false
		}
	}
	return true
}

func equalDevice(a, b wire.Device) bool { return reflect.DeepEqual(a, b) }

func (m *PeerMap) clone() PeerMap {
	c := PeerMap{Complete: m.Complete, filter: m.filter, relays: m.relays, stun: m.stun}
	for _, p := range m.peers {
		c.set(p)
	}
	return c
}
