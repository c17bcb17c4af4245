package policy

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/weftmesh/weft/wire"
)

// approversDoc puts an autoApprovers section at line 2, column 18.
func approversDoc(section string) string {
	return "{\"default\": \"deny\",\n\"autoApprovers\": " + section + "}"
}

func TestApproversParseErrors(t *testing.T) {
	tests := []struct{ name, section, want string }{
		{"not an object", `[]`, `p.json:2:18: "autoApprovers" must be an object with "routes" and "exitNode", not an array`},
		{"unknown field", `{"route": {}}`, `p.json:2:19: unknown field "route" in autoApprovers (want "routes" or "exitNode")`},
		{"duplicate field", `{"exitNode": ["a"], "exitNode": ["b"]}`, `p.json:2:38: duplicate field "exitNode"`},
		{"routes not an object", `{"routes": []}`, `p.json:2:29: "routes" must be an object of network to approvers, not an array`},
		{"not a network", `{"routes": {"lan": ["a"]}}`, `p.json:2:30: invalid route "lan": want a network like 192.168.1.0/24`},
		{"not masked", `{"routes": {"192.168.1.1/24": ["a"]}}`, `p.json:2:30: route 192.168.1.1/24 is not a network address: use 192.168.1.0/24`},
		{"exit route", `{"routes": {"0.0.0.0/0": ["a"]}}`, `p.json:2:30: route 0.0.0.0/0 is an exit route: approve exit nodes with "exitNode"`},
		{"ipv6 exit route", `{"routes": {"::/0": ["a"]}}`, `p.json:2:30: route ::/0 is an exit route: approve exit nodes with "exitNode"`},
		{"inside the mesh", `{"routes": {"100.64.5.0/24": ["a"]}}`, `p.json:2:30: route 100.64.5.0/24 is inside the mesh range 100.64.0.0/10`},
		{"ipv4-mapped", `{"routes": {"::ffff:10.0.0.0/104": ["a"]}}`, `p.json:2:30: route ::ffff:10.0.0.0/104 is an IPv4-mapped IPv6 prefix: write the IPv4 one`},
		{"duplicate route", `{"routes": {"10.0.0.0/8": ["a"], "10.0.0.0/8": ["b"]}}`, `p.json:2:51: duplicate route "10.0.0.0/8"`},
		{"duplicate route spelled differently", `{"routes": {"fd00::/8": ["a"], "FD00::/8": ["b"]}}`, `p.json:2:49: duplicate route "FD00::/8"`},
		{"no approvers", `{"routes": {"10.0.0.0/8": []}}`, `p.json:2:44: approvers of "10.0.0.0/8" is empty`},
		{"exitNode not an array", `{"exitNode": "gw"}`, `p.json:2:31: "exitNode" must be an array of strings, not a string`},
		{"bad device name", `{"exitNode": ["Bad"]}`, `p.json:2:32: invalid device name "Bad": a device name is a DNS label (a-z, 0-9 and '-', at most 63)`},
		{"unknown group", `{"exitNode": ["gw1", "group:gw"]}`, `p.json:2:39: unknown group "gw"`},
		{"unknown reference", `{"routes": {"10.0.0.0/8": ["tag:gw"]}}`, `p.json:2:45: unknown reference "tag:gw": use a device name, group:NAME, user:EMAIL or *`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("p.json", []byte(approversDoc(tt.section)))
			var perr *Error
			if !errors.As(err, &perr) || p != nil {
				t.Fatalf("Parse = %v, %v; want a *policy.Error", p, err)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestAutoApproves(t *testing.T) {
	p := mustParse(t, `{"default": "deny",
		"groups": {"gw": ["gw1", "user:ann@example.com"]},
		"autoApprovers": {
			"routes": {"192.168.0.0/16": ["group:gw"], "10.1.0.0/24": ["gw2"], "fd00::/8": ["*"]},
			"exitNode": ["gw2"]
		}}`)
	gw1 := Device{ID: "1", Name: "gw1", User: "bob@example.com"}
	gw2 := Device{ID: "2", Name: "gw2"}
	ann := Device{ID: "3", Name: "annbox", User: "Ann@Example.com"}
	other := Device{ID: "4", Name: "other"}
	cam := Device{ID: "5", Name: "cam", Gateway: "2"}
	tests := []struct {
		d     Device
		route string
		want  bool
	}{
		{gw1, "192.168.1.0/24", true}, // inside
		{gw1, "192.168.0.0/16", true}, // the approved network itself
		{gw1, "192.0.0.0/8", false},   // wider
		{gw1, "10.1.0.0/24", false},   // another device's
		{gw1, "0.0.0.0/0", false},
		{gw2, "10.1.0.0/24", true},
		{gw2, "10.1.0.128/25", true},
		{gw2, "10.1.0.0/23", false},
		{gw2, "0.0.0.0/0", true},
		{gw2, "::/0", true},
		{ann, "192.168.7.0/24", true}, // through user: in the group, case-insensitive
		{other, "fd00:1::/32", true},  // "*"
		{other, "192.168.1.0/24", false},
		{other, "0.0.0.0/0", false},
		{cam, "10.1.0.0/24", false},                            // virtual devices route nothing
		{gw1, "::ffff:192.168.1.0/120", false},                 // another family
		{Device{ID: "6", Name: "gw1"}, "192.168.9.0/24", true}, // by name, whatever the user
	}
	for _, tt := range tests {
		if got := p.AutoApproves(tt.d, netip.MustParsePrefix(tt.route)); got != tt.want {
			t.Errorf("AutoApproves(%s, %s) = %v, want %v", tt.d.Name, tt.route, got, tt.want)
		}
	}
	if Default().AutoApproves(gw1, netip.MustParsePrefix("192.168.1.0/24")) {
		t.Error("the default policy approves routes")
	}
	if p.AutoApproves(gw1, netip.Prefix{}) {
		t.Error("an invalid prefix is approved")
	}
}

func TestApproversMarshalAndWarnings(t *testing.T) {
	in := "{\"default\":\"allow\",\n\"autoApprovers\":{\"exitNode\":[\"ghost\"],\n\"routes\":{\"10.0.0.0/8\":[\"user:nobody@example.com\",\"dev1\"],\"192.168.1.0/24\":[\"dev2\"]}}}"
	p := mustParse(t, in)
	want := []string{
		`t.json:2:30: no device named "ghost" (yet)`,
		`t.json:3:25: user "nobody@example.com" has no devices`,
	}
	if got := p.Warnings(sampleDevices()); !reflect.DeepEqual(got, want) {
		t.Errorf("Warnings\n got %q\nwant %q", got, want)
	}
	out, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"autoApprovers": {`) || !strings.Contains(string(out), `"exitNode": [`) {
		t.Fatalf("Marshal lost the autoApprovers:\n%s", out)
	}
	again := mustParse(t, string(out))
	for _, d := range sampleDevices() {
		for _, r := range []string{"10.2.0.0/16", "192.168.1.0/24", "0.0.0.0/0"} {
			route := netip.MustParsePrefix(r)
			if p.AutoApproves(d, route) != again.AutoApproves(d, route) {
				t.Errorf("round trip changed AutoApproves(%s, %s)", d.Name, r)
			}
		}
	}
	if !again.AutoApproves(sampleDevices()[0], netip.MustParsePrefix("10.2.0.0/16")) {
		t.Error("dev1 lost its approval of 10.0.0.0/8 in the round trip")
	}
	// An empty section survives as one.
	empty, err := mustParse(t, `{"default":"deny","autoApprovers":{}}`).Marshal()
	if err != nil || !strings.Contains(string(empty), `"autoApprovers": {}`) {
		t.Errorf("empty section: %s, %v", empty, err)
	}
}

// gatewayDevices: a and b run weft; cam is a virtual device behind gw, cam2 behind gw2.
func gatewayDevices() []Device {
	addr := netip.MustParseAddr
	return []Device{
		{ID: "a", Name: "a", Address: addr("100.64.0.1")},
		{ID: "b", Name: "b", Address: addr("100.64.0.2")},
		{ID: "gw", Name: "gw", Address: addr("100.64.0.3"), User: "ann@example.com"},
		{ID: "gw2", Name: "gw2", Address: addr("100.64.0.4")},
		{ID: "cam", Name: "cam", Address: addr("100.64.0.10"), Gateway: "gw", User: "ann@example.com"},
		{ID: "cam2", Name: "cam2", Address: addr("100.64.0.11"), Gateway: "gw2"},
	}
}

func TestCompileVirtualDevices(t *testing.T) {
	p := mustParse(t, `{"default":"deny","rules":[
		{"from":["a"],"to":["cam"],"ports":["tcp/554"]},
		{"from":["cam"],"to":["b"],"ports":["tcp/80"]},
		{"from":["cam"],"to":["cam2"],"ports":["icmp"]}]}`)
	devs := gatewayDevices()
	wantFilters := map[string]wire.PacketFilter{
		"a": {}, "gw": {}, "gw2": {},
		// A virtual device's traffic carries its own address (its gateway source-NATs it
		// 1:1), so receivers' filters name it.
		"b":    {Rules: []wire.FilterRule{{Sources: src("100.64.0.10"), Proto: "tcp", Ports: ports(80, 80)}}},
		"cam":  {Rules: []wire.FilterRule{{Sources: src("100.64.0.1"), Proto: "tcp", Ports: ports(554, 554)}}},
		"cam2": {Rules: []wire.FilterRule{{Sources: src("100.64.0.10"), Proto: "icmp"}}},
	}
	if got := p.Compile(devs); !reflect.DeepEqual(got, wantFilters) {
		t.Errorf("filters\n got %+v\nwant %+v", got, wantFilters)
	}
	wantVisible := map[string][]string{
		"a":    {"cam", "gw"},                    // cam, and gw to reach it
		"b":    {"cam", "gw"},                    // cam may reach b: through gw
		"gw":   {"a", "b", "cam", "cam2", "gw2"}, // its own cam, and everything cam talks to
		"gw2":  {"cam", "cam2", "gw"},            // cam pings cam2: the two gateways meet
		"cam":  {"a", "b", "cam2", "gw", "gw2"},
		"cam2": {"cam", "gw", "gw2"},
	}
	if got := p.Visible(devs); !reflect.DeepEqual(got, wantVisible) {
		t.Errorf("Visible\n got %q\nwant %q", got, wantVisible)
	}

	// Nothing allowed: each gateway still sees its own virtual device, nothing else.
	deny := mustParse(t, `{"default":"deny"}`)
	if got, want := deny.Visible(devs), map[string][]string{
		"a": {}, "b": {}, "gw": {"cam"}, "gw2": {"cam2"}, "cam": {"gw"}, "cam2": {"gw2"},
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("deny-all Visible\n got %q\nwant %q", got, want)
	}
	// user: selects a virtual device with its gateway's user.
	byUser := mustParse(t, `{"default":"deny","rules":[{"from":["b"],"to":["user:ann@example.com"],"ports":["*"]}]}`)
	f := byUser.Compile(devs)
	if !f["cam"].Allows(netip.MustParseAddr("100.64.0.2"), wire.ProtoTCP, 80) || !f["gw"].Allows(netip.MustParseAddr("100.64.0.2"), wire.ProtoTCP, 80) {
		t.Errorf("user: rule does not reach gw and cam: %+v", f)
	}
	// Allow-all: every filter allows, everyone sees everyone.
	for id, f := range Default().Compile(devs) {
		if !f.DefaultAllow {
			t.Errorf("default policy: filter of %s %+v", id, f)
		}
	}
	for id, peers := range Default().Visible(devs) {
		if len(peers) != len(devs)-1 {
			t.Errorf("default policy: %s sees %v", id, peers)
		}
	}
}
