package policy

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const example = `{"default":"deny","groups":{"servers":["dev2"],"laptops":["dev1"]},"rules":[{"from":["group:laptops"],"to":["group:servers"],"ports":["tcp/22","icmp"]}]}`

// portLine puts a "ports" entry at line 4, column 54 of a small policy.
func portLine(port string) string {
	return "{\n  \"default\": \"deny\",\n  \"rules\": [\n" +
		`    {"from": ["a"], "to": ["b"], "ports": ["tcp/22", ` + port + `]}` +
		"\n  ]\n}\n"
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in, want string // want: the whole message, or its start when it ends in "…"
	}{
		{"unknown top field", `{"default":"deny","rulez":[]}`,
			`p.json:1:19: unknown field "rulez" (want "default", "groups", "rules" or "autoApprovers")`},
		{"duplicate top field", `{"default":"deny","default":"allow"}`,
			`p.json:1:19: duplicate field "default"`},
		{"not an object", `  ["default"]`, `p.json:1:3: a policy is a JSON object, not an array`},
		{"missing default", `{}`, `p.json:1:1: missing "default": say "allow" or "deny"`},
		{"bad default", `{"default":"maybe"}`, `p.json:1:12: "default" must be "allow" or "deny"`},
		{"default not string", `{"default":true}`, `p.json:1:12: "default" must be "allow" or "deny"`},
		{"syntax trailing comma", "{\n  \"default\": \"deny\",\n}",
			`p.json:3:1: invalid character '}' looking for beginning of object key string`},
		{"syntax bad literal", "{\"default\": deny}", `p.json:1:13: invalid character 'd' looking for beginning of value`},
		{"truncated", `{"default":"deny"`, `p.json:1:18: unexpected end of JSON input`},
		{"empty file", ``, `p.json:1:1: unexpected end of JSON input`},
		{"trailing data", "{\"default\":\"deny\"}\n{}", `p.json:2:1: invalid character '{' after top-level value`},

		{"port zero", portLine(`"tcp/0"`), `p.json:4:54: port 0 out of range 1-65535 in "tcp/0"`},
		{"port too big", portLine(`"udp/65536"`), `p.json:4:54: port 65536 out of range 1-65535 in "udp/65536"`},
		{"port range reversed", portLine(`"tcp/90-80"`), `p.json:4:54: port range "tcp/90-80" ends before it starts`},
		{"port range end zero", portLine(`"tcp/1-0"`), `p.json:4:54: port 0 out of range 1-65535 in "tcp/1-0"`},
		{"unknown proto", portLine(`"sctp/1"`), `p.json:4:54: unknown protocol in "sctp/1": …`},
		{"icmp with port", portLine(`"icmp/8"`), `p.json:4:54: unknown protocol in "icmp/8": …`},
		{"proto without port", portLine(`"tcp"`), `p.json:4:54: missing port in "tcp": use tcp/N, tcp/N-M or tcp/*`},
		{"port not a number", portLine(`"tcp/ssh"`), `p.json:4:54: invalid port "ssh" in "tcp/ssh"`},
		{"port with sign", portLine(`"tcp/+22"`), `p.json:4:54: invalid port "+22" in "tcp/+22"`},
		{"empty port", portLine(`""`), `p.json:4:54: empty port`},
		{"port is a number", portLine(`22`), `p.json:4:54: "ports" must hold strings, not a number, boolean or null`},

		{"unknown group in rule", `{"default":"deny","rules":[{"from":["group:nope"],"to":["*"],"ports":["*"]}]}`,
			`p.json:1:37: unknown group "nope"`},
		{"unknown group in group", "{\"default\":\"deny\",\"groups\":{\n\"a\":[\"dev1\",\"group:b\"]}}",
			`p.json:2:13: unknown group "b"`},
		{"group cycle", "{\"default\": \"deny\", \"groups\": {\n  \"a\": [\"group:b\"],\n  \"b\": [\"dev1\", \"group:a\"]\n}}",
			`p.json:3:17: group cycle: a -> b -> a`},
		{"group contains itself", "{\"default\": \"deny\", \"groups\": {\"a\": [\"group:a\"]}}",
			`p.json:1:38: group cycle: a -> a`},
		{"long cycle reached from outside", `{"default":"deny","groups":{"x":["group:a"],"a":["group:b"],"b":["group:c"],"c":["group:a"]}}`,
			`p.json:1:82: group cycle: a -> b -> c -> a`},
		{"duplicate group", "{\"default\":\"deny\",\"groups\":{\n \"x\":[],\n \"x\":[]}}",
			`p.json:3:2: duplicate group "x"`},
		{"bad group name", `{"default":"deny","groups":{"a b":[]}}`, `p.json:1:29: invalid group name "a b": …`},
		{"empty group name", `{"default":"deny","groups":{"":[]}}`, `p.json:1:29: empty group name`},
		{"empty group reference", `{"default":"deny","rules":[{"from":["group:"],"to":["*"],"ports":["*"]}]}`,
			`p.json:1:37: empty group name`},
		{"star in group", `{"default":"deny","groups":{"a":["*"]}}`, `p.json:1:34: "*" cannot be a group member; use it in a rule`},
		{"groups not object", `{"default":"deny","groups":[]}`,
			`p.json:1:28: "groups" must be an object of group name to members, not an array`},
		{"group members not array", `{"default":"deny","groups":{"a":"dev1"}}`,
			`p.json:1:33: group "a" must be an array of strings, not a string`},

		{"empty name", `{"default":"deny","rules":[{"from":[""],"to":["*"],"ports":["*"]}]}`, `p.json:1:37: empty name`},
		{"bad device name", `{"default":"deny","rules":[{"from":["Dev1"],"to":["*"],"ports":["*"]}]}`,
			`p.json:1:37: invalid device name "Dev1": …`},
		{"device name with dash at end", `{"default":"deny","rules":[{"from":["dev-"],"to":["*"],"ports":["*"]}]}`,
			`p.json:1:37: invalid device name "dev-": …`},
		{"bad email", `{"default":"deny","rules":[{"from":["user:bob"],"to":["*"],"ports":["*"]}]}`,
			`p.json:1:37: invalid email "bob" in user:EMAIL`},
		{"unknown reference kind", `{"default":"deny","rules":[{"from":["*"],"to":["tag:web"],"ports":["*"]}]}`,
			`p.json:1:48: unknown reference "tag:web": use a device name, group:NAME, user:EMAIL or *`},
		{"rules not array", `{"default":"deny","rules":{}}`, `p.json:1:27: "rules" must be an array, not an object`},
		{"rule not object", `{"default":"deny","rules":["x"]}`,
			`p.json:1:28: a rule is an object with "from", "to" and "ports", not a string`},
		{"rule missing ports", "{\"default\":\"deny\",\"rules\":[\n  {\"from\":[\"*\"],\"to\":[\"*\"]}]}",
			`p.json:2:3: rule is missing "ports" (use ["*"] for everything)`},
		{"rule missing from", `{"default":"deny","rules":[{"to":["*"],"ports":["*"]}]}`, `p.json:1:28: rule is missing "from"`},
		{"rule empty to", `{"default":"deny","rules":[{"from":["*"],"to":[],"ports":["*"]}]}`, `p.json:1:47: "to" is empty`},
		{"rule from not array", `{"default":"deny","rules":[{"from":"*","to":["*"],"ports":["*"]}]}`,
			`p.json:1:36: "from" must be an array of strings, not a string`},
		{"rule unknown field", `{"default":"deny","rules":[{"action":"accept","from":["*"],"to":["*"],"ports":["*"]}]}`,
			`p.json:1:29: unknown field "action" in rule (want "from", "to" and "ports")`},
		{"rule duplicate field", `{"default":"deny","rules":[{"from":["*"],"from":["*"],"to":["*"],"ports":["*"]}]}`,
			`p.json:1:42: duplicate field "from"`},
		{"nesting", `{"default":"deny","rules":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]}`, `p.json:1:43: nested too deeply`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("p.json", []byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want error %q", p, tt.want)
			}
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("error %v is a %T, want *policy.Error", err, err)
			}
			if p != nil {
				t.Errorf("Parse returned a policy with its error")
			}
			got := err.Error()
			if prefix, ok := strings.CutSuffix(tt.want, "…"); ok {
				if !strings.HasPrefix(got, prefix) {
					t.Errorf("error\n got %s\nwant %s", got, tt.want)
				}
			} else if got != tt.want {
				t.Errorf("error\n got %s\nwant %s", got, tt.want)
			}
			if strings.Contains(got, "\n") {
				t.Errorf("error spans lines: %q", got)
			}
		})
	}
}

func TestParseExample(t *testing.T) {
	p, err := Parse("p.json", []byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if p.DefaultAllow() {
		t.Errorf("DefaultAllow() = true for default deny")
	}
	want := []rule{{
		from:  []ref{{kind: refGroup, name: "laptops", off: 85, pos: pos{1, 86}}},
		to:    []ref{{kind: refGroup, name: "servers", off: 108, pos: pos{1, 109}}},
		ports: []portSpec{{proto: "tcp", first: 22, last: 22, pos: pos{1, 135}}, {proto: "icmp", pos: pos{1, 144}}},
	}}
	if !reflect.DeepEqual(p.rules, want) {
		t.Errorf("rules\n got %+v\nwant %+v", p.rules, want)
	}
	if len(p.groups) != 2 || p.groups[0].name != "servers" || p.groups[1].name != "laptops" {
		t.Errorf("groups = %+v, want servers then laptops", p.groups)
	}
}

func TestParsePorts(t *testing.T) {
	tests := []struct {
		in   string
		want portSpec
	}{
		{"*", portSpec{proto: "*"}},
		{"icmp", portSpec{proto: "icmp"}},
		{"tcp/22", portSpec{proto: "tcp", first: 22, last: 22}},
		{"udp/1", portSpec{proto: "udp", first: 1, last: 1}},
		{"udp/65535", portSpec{proto: "udp", first: 65535, last: 65535}},
		{"tcp/8000-8080", portSpec{proto: "tcp", first: 8000, last: 8080}},
		{"tcp/443-443", portSpec{proto: "tcp", first: 443, last: 443}},
		{"tcp/*", portSpec{proto: "tcp", first: 1, last: 65535}},
		{"tcp/022", portSpec{proto: "tcp", first: 22, last: 22}},
	}
	for _, tt := range tests {
		got, err := parsePort(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parsePort(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	in := `{
  "default": "deny",
  "groups": {
    "ops": ["group:admins", "dev3"],
    "admins": ["user:Ann@Example.com"],
    "empty": []
  },
  "rules": [
    {"from": ["group:ops", "dev1"], "to": ["*"], "ports": ["tcp/22", "tcp/8000-8080", "udp/*", "icmp"]},
    {"from": ["*"], "to": ["group:empty", "dev9"], "ports": ["*"]}
  ]
}`
	p, err := Parse("in.json", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "default": "deny",
  "groups": {
    "admins": [
      "user:Ann@Example.com"
    ],
    "empty": [],
    "ops": [
      "group:admins",
      "dev3"
    ]
  },
  "rules": [
    {
      "from": [
        "group:ops",
        "dev1"
      ],
      "to": [
        "*"
      ],
      "ports": [
        "tcp/22",
        "tcp/8000-8080",
        "udp/*",
        "icmp"
      ]
    },
    {
      "from": [
        "*"
      ],
      "to": [
        "group:empty",
        "dev9"
      ],
      "ports": [
        "*"
      ]
    }
  ]
}
`
	if string(out) != want {
		t.Errorf("Marshal:\n%s\nwant:\n%s", out, want)
	}
	again, err := Parse("out.json", out)
	if err != nil {
		t.Fatalf("Marshal output does not parse: %v", err)
	}
	out2, err := again.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(out2) != string(out) {
		t.Errorf("second round trip differs:\n%s", out2)
	}
	devices := sampleDevices()
	if !reflect.DeepEqual(p.Compile(devices), again.Compile(devices)) {
		t.Errorf("round-tripped policy compiles differently")
	}
}

func TestDefault(t *testing.T) {
	out, err := Default().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "{\n  \"default\": \"allow\"\n}\n" {
		t.Errorf("Default().Marshal() = %q", out)
	}
	p, err := Parse("default.json", out)
	if err != nil {
		t.Fatal(err)
	}
	if !p.DefaultAllow() || !Default().DefaultAllow() {
		t.Errorf("default policy does not allow everything")
	}
}

func TestWarnings(t *testing.T) {
	in := "{\"default\":\"deny\",\n\"rules\":[{\"from\":[\"dev1\",\"ghost\"],\"to\":[\"user:nobody@example.com\",\"group:g\"],\"ports\":[\"*\"]}],\n\"groups\":{\"g\":[\"user:ANN@example.com\",\"phantom\"]}}"
	p, err := Parse("w.json", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	got := p.Warnings(sampleDevices())
	want := []string{
		`w.json:2:26: no device named "ghost" (yet)`,
		`w.json:2:41: user "nobody@example.com" has no devices`,
		`w.json:3:39: no device named "phantom" (yet)`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Warnings\n got %q\nwant %q", got, want)
	}

	allow, err := Parse("a.json", []byte(`{"default":"allow","rules":[{"from":["*"],"to":["*"],"ports":["tcp/22"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := allow.Warnings(sampleDevices()); !reflect.DeepEqual(got, []string{`a.json:1:12: default is "allow": the rules have no effect`}) {
		t.Errorf("Warnings of allow with rules = %q", got)
	}
	if got := Default().Warnings(sampleDevices()); got != nil {
		t.Errorf("Default().Warnings = %q, want none", got)
	}
}

func TestPosition(t *testing.T) {
	data := []byte("ab\ncd\n\nxyz")
	for _, tt := range []struct{ off, line, col int }{
		{0, 1, 1}, {2, 1, 3}, {3, 2, 1}, {5, 2, 3}, {6, 3, 1}, {7, 4, 1}, {9, 4, 3}, {10, 4, 4}, {99, 4, 4},
	} {
		if l, c := position(data, tt.off); l != tt.line || c != tt.col {
			t.Errorf("position(%d) = %d:%d, want %d:%d", tt.off, l, c, tt.line, tt.col)
		}
	}
}

// FuzzParse: Parse never panics, and whatever it accepts survives a Marshal round trip.
func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte(`{"default":"allow"}`))
	f.Add([]byte(`{"default":"deny","groups":{"a":["group:b"],"b":["user:x@y"]},"rules":[{"from":["*"],"to":["group:a"],"ports":["udp/1-2"]}]}`))
	f.Add([]byte(`{"default":"deny","groups":{"gw":["g1"]},"autoApprovers":{"routes":{"10.0.0.0/8":["group:gw"],"FD00::/8":["*"]},"exitNode":["user:a@b"]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("f.json", data)
		if err != nil {
			return
		}
		out, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		p2, err := Parse("out.json", out)
		if err != nil {
			t.Fatalf("Marshal output does not parse: %v\n%s", err, out)
		}
		out2, err := p2.Marshal()
		if err != nil || string(out2) != string(out) {
			t.Fatalf("Marshal not stable: %v\n%s\n%s", err, out, out2)
		}
	})
}
