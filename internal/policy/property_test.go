package policy

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/weftmesh/weft/wire"
)

// model is a random policy kept as plain Go data, evaluated here by brute force,
// independently of the compiler.
type model struct {
	devices []Device
	groups  map[string][]string
	rules   []modelRule
}

type modelRule struct{ from, to, ports []string }

func randomModel(r *rand.Rand) model {
	users := []string{"ann@example.com", "Bob@Example.com", ""}
	userRefs := []string{"user:ANN@example.com", "user:bob@example.com", "user:nobody@example.com"}
	var m model
	n := 1 + r.IntN(8)
	for i := range n {
		d := Device{ID: fmt.Sprintf("id%02d", i), Name: fmt.Sprintf("d%d", i), User: users[r.IntN(len(users))]}
		if r.IntN(10) > 0 {
			d.Address = netip.AddrFrom4([4]byte{100, 64, 0, byte(i + 1)})
		}
		m.devices = append(m.devices, d)
	}
	ng := r.IntN(5)
	m.groups = map[string][]string{}
	// A group may contain only groups with a larger number: no cycles.
	refTo := func(minGroup int) string {
		switch k := r.IntN(10); {
		case k < 5:
			return fmt.Sprintf("d%d", r.IntN(n+1)) // one past the last is a ghost
		case k < 7:
			return userRefs[r.IntN(len(userRefs))]
		default:
			if minGroup >= ng {
				return fmt.Sprintf("d%d", r.IntN(n))
			}
			return fmt.Sprintf("group:g%d", minGroup+r.IntN(ng-minGroup))
		}
	}
	for g := range ng {
		members := []string{}
		for range r.IntN(4) {
			members = append(members, refTo(g+1))
		}
		m.groups[fmt.Sprintf("g%d", g)] = members
	}
	side := func() []string {
		var refs []string
		for range 1 + r.IntN(3) {
			ref := refTo(0)
			if r.IntN(8) == 0 {
				ref = "*"
			}
			refs = append(refs, ref)
		}
		return refs
	}
	port := func() uint16 { return uint16(1 + r.IntN(30)) }
	for range r.IntN(6) {
		rule := modelRule{from: side(), to: side()}
		for range 1 + r.IntN(3) {
			proto := []string{"tcp", "udp"}[r.IntN(2)]
			var spec string
			switch k := r.IntN(12); {
			case k < 4:
				spec = fmt.Sprintf("%s/%d", proto, port())
			case k < 8:
				a, b := port(), port()
				spec = fmt.Sprintf("%s/%d-%d", proto, min(a, b), max(a, b))
			case k < 9:
				spec = proto + "/*"
			case k < 10:
				spec = fmt.Sprintf("%s/%d-65535", proto, 20+r.IntN(10))
			case k < 11:
				spec = "icmp"
			default:
				spec = "*"
			}
			rule.ports = append(rule.ports, spec)
		}
		m.rules = append(m.rules, rule)
	}
	return m
}

func (m model) json() []byte {
	type jr struct {
		From  []string `json:"from"`
		To    []string `json:"to"`
		Ports []string `json:"ports"`
	}
	doc := struct {
		Default string              `json:"default"`
		Groups  map[string][]string `json:"groups"`
		Rules   []jr                `json:"rules"`
	}{Default: "deny", Groups: m.groups, Rules: []jr{}}
	for _, r := range m.rules {
		doc.Rules = append(doc.Rules, jr{r.from, r.to, r.ports})
	}
	b, err := json.MarshalIndent(doc, "", " ")
	if err != nil {
		panic(err)
	}
	return b
}

// names reports whether ref names device d.
func (m model) names(ref string, d Device) bool {
	switch {
	case ref == "*":
		return true
	case strings.HasPrefix(ref, "user:"):
		return d.User != "" && strings.EqualFold(d.User, strings.TrimPrefix(ref, "user:"))
	case strings.HasPrefix(ref, "group:"):
		for _, member := range m.groups[strings.TrimPrefix(ref, "group:")] {
			if m.names(member, d) {
				return true
			}
		}
		return false
	}
	return ref == d.Name
}

func (m model) anyNames(refs []string, d Device) bool {
	return slices.ContainsFunc(refs, func(ref string) bool { return m.names(ref, d) })
}

// allows is the policy's meaning: may src start proto to dport on dst?
func (m model) allows(src, dst Device, proto string, dport uint16) bool {
	if src.ID == dst.ID {
		return false
	}
	for _, r := range m.rules {
		if !m.anyNames(r.from, src) || !m.anyNames(r.to, dst) {
			continue
		}
		for _, spec := range r.ports {
			if spec == "*" || spec == proto {
				return true
			}
			p, ports, _ := strings.Cut(spec, "/")
			if p != proto {
				continue
			}
			if ports == "*" {
				return true
			}
			var lo, hi uint16
			if _, err := fmt.Sscanf(ports, "%d-%d", &lo, &hi); err != nil {
				fmt.Sscanf(ports, "%d", &lo)
				hi = lo
			}
			if lo <= dport && dport <= hi {
				return true
			}
		}
	}
	return false
}

// talks reports whether some rule lets a reach b or b reach a.
func (m model) talks(a, b Device) bool {
	if a.ID == b.ID {
		return false
	}
	for _, r := range m.rules {
		if m.anyNames(r.from, a) && m.anyNames(r.to, b) || m.anyNames(r.from, b) && m.anyNames(r.to, a) {
			return true
		}
	}
	return false
}

func TestCompileMatchesPolicyMeaning(t *testing.T) {
	probePorts := []uint16{1, 2, 3, 5, 8, 13, 19, 20, 21, 22, 25, 29, 30, 31, 32, 100, 65534, 65535}
	stranger := netip.MustParseAddr("100.64.9.9")
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 1))
		m := randomModel(r)
		doc := m.json()
		p, err := Parse("rand.json", doc)
		if err != nil {
			t.Fatalf("seed %d: generated policy does not parse: %v\n%s", seed, err, doc)
		}
		filters := p.Compile(m.devices)
		visible := p.Visible(m.devices)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d: %s\npolicy:\n%s\ndevices: %+v\nfilters: %+v", seed, fmt.Sprintf(format, args...), doc, m.devices, filters)
		}
		if len(filters) != len(m.devices) || len(visible) != len(m.devices) {
			fail("got %d filters and %d visibility lists for %d devices", len(filters), len(visible), len(m.devices))
		}
		for _, dst := range m.devices {
			f := filters[dst.ID]
			if err := f.Validate(); err != nil {
				fail("filter of %s invalid: %v", dst.ID, err)
			}
			checkSorted(t, seed, f)
			for _, proto := range []string{"tcp", "udp", "icmp"} {
				for _, port := range probePorts {
					if f.Allows(stranger, proto, port) {
						fail("%s allows %s/%d from an address of no device", dst.ID, proto, port)
					}
					for _, s := range m.devices {
						if !s.Address.IsValid() {
							continue
						}
						want := m.allows(s, dst, proto, port)
						if got := f.Allows(s.Address, proto, port); got != want {
							fail("%s <- %s %s/%d: filter allows=%v, policy allows=%v", dst.ID, s.ID, proto, port, got, want)
						}
					}
				}
			}
			var wantVis []string
			for _, o := range m.devices {
				if m.talks(dst, o) {
					wantVis = append(wantVis, o.ID)
				}
			}
			if !slices.Equal(visible[dst.ID], wantVis) {
				fail("Visible[%s] = %q, want %q", dst.ID, visible[dst.ID], wantVis)
			}
		}

		// The same devices in another order compile to the same filters.
		shuffled := slices.Clone(m.devices)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if again := p.Compile(shuffled); !reflect.DeepEqual(again, filters) {
			fail("device order changed the filters: %+v", again)
		}
		if again := p.Visible(shuffled); !reflect.DeepEqual(again, visible) {
			fail("device order changed visibility: %q", again)
		}
		// Marshal and parse back: same filters.
		out, err := p.Marshal()
		if err != nil {
			fail("Marshal: %v", err)
		}
		p2, err := Parse("marshaled.json", out)
		if err != nil {
			fail("Marshal output does not parse: %v\n%s", err, out)
		}
		if again := p2.Compile(m.devices); !reflect.DeepEqual(again, filters) {
			fail("round trip changed the filters: %+v", again)
		}
	}
}

func checkSorted(t *testing.T, seed uint64, f wire.PacketFilter) {
	t.Helper()
	for i, r := range f.Rules {
		if !slices.IsSortedFunc(r.Sources, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) }) {
			t.Fatalf("seed %d: sources not sorted: %v", seed, r.Sources)
		}
		if i > 0 && f.Rules[i-1].Proto > r.Proto {
			t.Fatalf("seed %d: rules not sorted by protocol: %+v", seed, f.Rules)
		}
		for j := 1; j < len(r.Ports); j++ {
			if uint32(r.Ports[j-1].Last)+1 >= uint32(r.Ports[j].First) {
				t.Fatalf("seed %d: port ranges overlap, touch or are unsorted: %v", seed, r.Ports)
			}
		}
	}
}
