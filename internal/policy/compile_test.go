package policy

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/weftmesh/weft/wire"
)

func sampleDevices() []Device {
	return []Device{
		{ID: "id1", Name: "dev1", Address: netip.MustParseAddr("100.64.0.1"), User: "ann@example.com"},
		{ID: "id2", Name: "dev2", Address: netip.MustParseAddr("100.64.0.2"), User: "bob@example.com"},
		{ID: "id3", Name: "dev3", Address: netip.MustParseAddr("100.64.0.3"), User: "ann@example.com"},
		{ID: "id4", Name: "dev4", Address: netip.MustParseAddr("100.64.0.4")},
		{ID: "id5", Name: "dev5", User: "carol@example.com"}, // no address yet
	}
}

func src(addrs ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range addrs {
		out = append(out, netip.PrefixFrom(netip.MustParseAddr(a), 32))
	}
	return out
}

func ports(pairs ...uint16) []wire.PortRange {
	var out []wire.PortRange
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, wire.PortRange{First: pairs[i], Last: pairs[i+1]})
	}
	return out
}

func mustParse(t *testing.T, in string) *Policy {
	t.Helper()
	p, err := Parse("t.json", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func checkCompile(t *testing.T, p *Policy, wantFilters map[string]wire.PacketFilter, wantVisible map[string][]string) {
	t.Helper()
	devices := sampleDevices()
	got := p.Compile(devices)
	if !reflect.DeepEqual(got, wantFilters) {
		for id := range wantFilters {
			if !reflect.DeepEqual(got[id], wantFilters[id]) {
				t.Errorf("filter of %s\n got %+v\nwant %+v", id, got[id], wantFilters[id])
			}
		}
		if len(got) != len(wantFilters) {
			t.Errorf("Compile gave %d filters, want %d", len(got), len(wantFilters))
		}
	}
	for id, f := range got {
		if err := f.Validate(); err != nil {
			t.Errorf("filter of %s does not validate: %v", id, err)
		}
	}
	if vis := p.Visible(devices); !reflect.DeepEqual(vis, wantVisible) {
		t.Errorf("Visible\n got %q\nwant %q", vis, wantVisible)
	}
}

func TestCompileExample(t *testing.T) {
	checkCompile(t, mustParse(t, example),
		map[string]wire.PacketFilter{
			"id1": {},
			"id2": {Rules: []wire.FilterRule{
				{Sources: src("100.64.0.1"), Proto: "icmp"},
				{Sources: src("100.64.0.1"), Proto: "tcp", Ports: ports(22, 22)},
			}},
			"id3": {}, "id4": {}, "id5": {},
		},
		map[string][]string{"id1": {"id2"}, "id2": {"id1"}, "id3": {}, "id4": {}, "id5": {}})
}

func TestCompileUsersAndNestedGroups(t *testing.T) {
	p := mustParse(t, `{"default": "deny",
		"groups": {
			"admins":  ["user:ANN@example.com"],
			"ops":     ["group:admins", "dev4"],
			"servers": ["dev2", "dev3"]
		},
		"rules": [
			{"from": ["group:ops"], "to": ["group:servers"], "ports": ["tcp/22", "tcp/20-21", "udp/53"]},
			{"from": ["dev4"], "to": ["dev2"], "ports": ["tcp/23-25"]},
			{"from": ["*"], "to": ["dev2"], "ports": ["icmp"]},
			{"from": ["dev2"], "to": ["user:ann@example.com"], "ports": ["*", "tcp/80"]}
		]}`)
	checkCompile(t, p,
		map[string]wire.PacketFilter{
			"id1": {Rules: []wire.FilterRule{{Sources: src("100.64.0.2"), Proto: "*"}}},
			"id2": {Rules: []wire.FilterRule{
				{Sources: src("100.64.0.1", "100.64.0.3", "100.64.0.4"), Proto: "icmp"},
				{Sources: src("100.64.0.1", "100.64.0.3"), Proto: "tcp", Ports: ports(20, 22)},
				{Sources: src("100.64.0.4"), Proto: "tcp", Ports: ports(20, 25)},
				{Sources: src("100.64.0.1", "100.64.0.3", "100.64.0.4"), Proto: "udp", Ports: ports(53, 53)},
			}},
			"id3": {Rules: []wire.FilterRule{
				{Sources: src("100.64.0.2"), Proto: "*"},
				{Sources: src("100.64.0.1", "100.64.0.4"), Proto: "tcp", Ports: ports(20, 22)},
				{Sources: src("100.64.0.1", "100.64.0.4"), Proto: "udp", Ports: ports(53, 53)},
			}},
			"id4": {}, "id5": {},
		},
		map[string][]string{
			"id1": {"id2", "id3"},
			"id2": {"id1", "id3", "id4", "id5"}, // id5 may ping id2 once it has an address
			"id3": {"id1", "id2", "id4"},
			"id4": {"id2", "id3"},
			"id5": {"id2"},
		})
}

func TestCompilePortMerging(t *testing.T) {
	p := mustParse(t, `{"default":"deny","rules":[
		{"from":["dev1"],"to":["dev2"],"ports":["tcp/10-20","tcp/15-30","tcp/31","tcp/40","udp/1-100","udp/101-65535"]},
		{"from":["dev3"],"to":["dev2"],"ports":["tcp/*","udp/*"]},
		{"from":["dev4"],"to":["dev2"],"ports":["tcp/1-65535"]}]}`)
	checkCompile(t, p,
		map[string]wire.PacketFilter{
			"id1": {},
			"id2": {Rules: []wire.FilterRule{
				{Sources: src("100.64.0.3", "100.64.0.4"), Proto: "tcp"},
				{Sources: src("100.64.0.1"), Proto: "tcp", Ports: ports(10, 31, 40, 40)},
				{Sources: src("100.64.0.1", "100.64.0.3"), Proto: "udp"},
			}},
			"id3": {}, "id4": {}, "id5": {},
		},
		map[string][]string{"id1": {"id2"}, "id2": {"id1", "id3", "id4"}, "id3": {"id2"}, "id4": {"id2"}, "id5": {}})
}

func TestCompileDefaultAllow(t *testing.T) {
	all := wire.PacketFilter{DefaultAllow: true}
	wantVisible := map[string][]string{
		"id1": {"id2", "id3", "id4", "id5"},
		"id2": {"id1", "id3", "id4", "id5"},
		"id3": {"id1", "id2", "id4", "id5"},
		"id4": {"id1", "id2", "id3", "id5"},
		"id5": {"id1", "id2", "id3", "id4"},
	}
	wantFilters := map[string]wire.PacketFilter{"id1": all, "id2": all, "id3": all, "id4": all, "id5": all}
	checkCompile(t, Default(), wantFilters, wantVisible)
	// Rules under default allow change nothing.
	checkCompile(t, mustParse(t, `{"default":"allow","rules":[{"from":["dev1"],"to":["dev2"],"ports":["tcp/22"]}]}`),
		wantFilters, wantVisible)
}

func TestCompileDenyAll(t *testing.T) {
	checkCompile(t, mustParse(t, `{"default":"deny"}`),
		map[string]wire.PacketFilter{"id1": {}, "id2": {}, "id3": {}, "id4": {}, "id5": {}},
		map[string][]string{"id1": {}, "id2": {}, "id3": {}, "id4": {}, "id5": {}})
	// A rule naming only unknown devices and an empty group also allows nothing.
	checkCompile(t, mustParse(t, `{"default":"deny","groups":{"none":[]},"rules":[{"from":["ghost","group:none"],"to":["*"],"ports":["*"]}]}`),
		map[string]wire.PacketFilter{"id1": {}, "id2": {}, "id3": {}, "id4": {}, "id5": {}},
		map[string][]string{"id1": {}, "id2": {}, "id3": {}, "id4": {}, "id5": {}})
}

func TestCompileNoDevices(t *testing.T) {
	p := mustParse(t, example)
	if got := p.Compile(nil); len(got) != 0 {
		t.Errorf("Compile(nil) = %v", got)
	}
	if got := p.Visible(nil); len(got) != 0 {
		t.Errorf("Visible(nil) = %v", got)
	}
}
