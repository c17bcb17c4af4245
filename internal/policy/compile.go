package policy

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/weftmesh/weft/wire"
)

// Compile gives every device in devices its inbound packet filter, keyed by device ID.
// The result depends only on the policy and the set of devices, not on their order:
// rules are sorted by protocol then ports, sources by address.
func (p *Policy) Compile(devices []Device) map[string]wire.PacketFilter {
	out := make(map[string]wire.PacketFilter, len(devices))
	if p.allow {
		for _, d := range devices {
			out[d.ID] = wire.PacketFilter{DefaultAllow: true}
		}
		return out
	}
	access := p.access(devices)
	for i, d := range devices {
		out[d.ID] = filterFor(devices, access[i])
	}
	return out
}

// Visible gives, for every device, the sorted IDs of the peers it may talk to in either
// direction; a device leaves every other peer out of its map.
//
// Traffic to and from a virtual device goes through its gateway, so wherever a device may
// talk to a virtual device, the hosts of both ends (the device itself, or the gateway of a
// virtual one) see each other and the other end. A gateway always sees its own virtual
// devices: it needs their LAN addresses to carry their traffic.
func (p *Policy) Visible(devices []Device) map[string][]string {
	seen := make([]map[int]bool, len(devices))
	for i := range seen {
		seen[i] = map[int]bool{}
	}
	link := func(i, j int) {
		if i != j {
			seen[i][j] = true
			seen[j][i] = true
		}
	}
	type pair struct{ a, b int }
	var pairs []pair
	if p.allow {
		for i := range devices {
			for j := range i {
				pairs = append(pairs, pair{i, j})
			}
		}
	} else {
		for dst, bySrc := range p.access(devices) {
			for src := range bySrc {
				pairs = append(pairs, pair{dst, src})
			}
		}
	}
	host := hosts(devices)
	for i := range devices {
		link(host[i], i)
	}
	for _, pr := range pairs {
		link(pr.a, pr.b)
		link(host[pr.a], pr.b)
		link(pr.a, host[pr.b])
		link(host[pr.a], host[pr.b])
	}
	out := make(map[string][]string, len(devices))
	for i, d := range devices {
		ids := make([]string, 0, len(seen[i]))
		for j := range seen[i] {
			ids = append(ids, devices[j].ID)
		}
		slices.Sort(ids)
		out[d.ID] = slices.Compact(ids)
	}
	return out
}

// hosts gives, for each device index, the index of the device its traffic enters and
// leaves the mesh through: its gateway's for a virtual device, else its own.
func hosts(devices []Device) []int {
	byID := make(map[string]int, len(devices))
	for i, d := range devices {
		byID[d.ID] = i
	}
	out := make([]int, len(devices))
	for i, d := range devices {
		out[i] = i
		if g, ok := byID[d.Gateway]; ok && d.Gateway != "" {
			out[i] = g
		}
	}
	return out
}

// grant is what one source may start towards one destination, accumulated over rules.
type grant struct {
	any      bool // "*": every protocol
	icmp     bool
	tcp, udp []wire.PortRange
}

// access returns, for each destination device index, the grants by source device index.
func (p *Policy) access(devices []Device) []map[int]*grant {
	r := newResolver(p, devices)
	access := make([]map[int]*grant, len(devices))
	for i := range access {
		access[i] = map[int]*grant{}
	}
	for _, rule := range p.rules {
		from, to := r.expand(rule.from), r.expand(rule.to)
		for _, dst := range to {
			for _, src := range from {
				if src == dst {
					continue // a device's traffic to itself never crosses the tunnel
				}
				g := access[dst][src]
				if g == nil {
					g = &grant{}
					access[dst][src] = g
				}
				for _, ps := range rule.ports {
					pr := wire.PortRange{First: ps.first, Last: ps.last}
					switch ps.proto {
					case wire.ProtoAny:
						g.any = true
					case wire.ProtoICMP:
						g.icmp = true
					case wire.ProtoTCP:
						g.tcp = append(g.tcp, pr)
					case wire.ProtoUDP:
						g.udp = append(g.udp, pr)
					}
				}
			}
		}
	}
	return access
}

// filterFor builds one destination's filter: sources with the same protocol and ports
// share a rule.
func filterFor(devices []Device, bySrc map[int]*grant) wire.PacketFilter {
	type key struct {
		proto string
		ports string // canonical text of the ranges, to group by
	}
	rules := map[key]*wire.FilterRule{}
	add := func(src netip.Addr, proto string, ports []wire.PortRange) {
		k := key{proto, portsKey(ports)}
		r := rules[k]
		if r == nil {
			r = &wire.FilterRule{Proto: proto, Ports: ports}
			rules[k] = r
		}
		r.Sources = append(r.Sources, netip.PrefixFrom(src, src.BitLen()))
	}
	for src, g := range bySrc {
		addr := devices[src].Address
		if !addr.IsValid() {
			continue // no address yet: it cannot send anything
		}
		if g.any {
			add(addr, wire.ProtoAny, nil)
			continue
		}
		if g.icmp {
			add(addr, wire.ProtoICMP, nil)
		}
		if len(g.tcp) > 0 {
			add(addr, wire.ProtoTCP, mergeRanges(g.tcp))
		}
		if len(g.udp) > 0 {
			add(addr, wire.ProtoUDP, mergeRanges(g.udp))
		}
	}
	var f wire.PacketFilter
	for _, r := range rules {
		slices.SortFunc(r.Sources, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
		r.Sources = slices.Compact(r.Sources) // two devices sharing an address
		f.Rules = append(f.Rules, *r)
	}
	slices.SortFunc(f.Rules, func(a, b wire.FilterRule) int {
		return cmp.Or(strings.Compare(a.Proto, b.Proto), slices.CompareFunc(a.Ports, b.Ports, comparePortRange))
	})
	return f
}

// mergeRanges sorts ranges and joins those that overlap or touch; every port (1-65535)
// becomes nil, the filter's "all ports".
func mergeRanges(in []wire.PortRange) []wire.PortRange {
	rs := slices.Clone(in)
	slices.SortFunc(rs, comparePortRange)
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if uint32(r.First) <= uint32(last.Last)+1 {
			last.Last = max(last.Last, r.Last)
			continue
		}
		out = append(out, r)
	}
	if len(out) == 1 && out[0].First <= 1 && out[0].Last == 65535 {
		return nil
	}
	return out
}

func comparePortRange(a, b wire.PortRange) int {
	return cmp.Or(cmp.Compare(a.First, b.First), cmp.Compare(a.Last, b.Last))
}

func portsKey(rs []wire.PortRange) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%d-%d,", r.First, r.Last)
	}
	return b.String()
}

// resolver expands references into device indices, memoising groups.
type resolver struct {
	devices []Device
	groups  map[string][]ref
	memo    map[string][]int
}

func newResolver(p *Policy, devices []Device) *resolver {
	r := &resolver{devices: devices, groups: map[string][]ref{}, memo: map[string][]int{}}
	for _, g := range p.groups {
		r.groups[g.name] = g.members
	}
	return r
}

// expand returns the sorted, distinct indices of the devices refs name. Parse has ruled
// out unknown groups and cycles.
func (r *resolver) expand(refs []ref) []int {
	var out []int
	for _, ref := range refs {
		switch ref.kind {
		case refAll:
			for i := range r.devices {
				out = append(out, i)
			}
		case refDevice:
			for i, d := range r.devices {
				if d.Name == ref.name {
					out = append(out, i)
				}
			}
		case refUser:
			for i, d := range r.devices {
				if d.User != "" && strings.EqualFold(d.User, ref.name) {
					out = append(out, i)
				}
			}
		case refGroup:
			members, ok := r.memo[ref.name]
			if !ok {
				members = r.expand(r.groups[ref.name])
				r.memo[ref.name] = members
			}
			out = append(out, members...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
