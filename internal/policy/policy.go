// Package policy parses an account's access policy and compiles it into the inbound packet
// filter of each device.
package policy

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// Device is what the compiler needs to know about a device of the account.
type Device struct {
	ID      string
	Name    string     // DNS label, unique in the account
	Address netip.Addr // mesh address
	User    string     // owner's email; empty if none
	// Gateway is, for a virtual device (a LAN device a gateway projects into the mesh),
	// the ID of the device hosting it; "" for a device running weft. Rules treat virtual
	// devices like any device; see Visible for what their gateways must see.
	Gateway string
}

// Policy is a parsed, validated access policy. The zero value is not valid; use Parse or
// Default. A Policy is immutable and safe for concurrent use.
//
// The JSON form:
//
//	{
//	  "default": "deny",                          // or "allow": everything may talk to everything
//	  "groups": {"servers": ["dev2", "group:db", "user:ann@example.com"]},
//	  "rules": [{"from": ["group:laptops"], "to": ["group:servers"], "ports": ["tcp/22", "icmp"]}],
//	  "autoApprovers": {"routes": {"192.168.1.0/24": ["group:gw"]}, "exitNode": ["gw1"]}
//	}
//
// (JSON has no comments; they are shown here only to explain.) "from" and "to" take device
// names, group:NAME, user:EMAIL (every device of that user) or "*" (every device). "ports"
// take tcp/N, tcp/N-M, tcp/*, the same for udp, icmp (echo request) or "*" (anything).
// Under "deny" a device accepts new flows only from the devices some rule allows; replies
// to flows it started are always accepted. "autoApprovers" (see AutoApproves) approve the
// routes the devices they name advertise, whatever the default.
type Policy struct {
	file      string
	allow     bool
	defPos    pos // of the "default" value
	groups    []group
	rules     []rule
	approvers autoApprovers
}

type group struct {
	name    string
	pos     pos
	members []ref
}

type rule struct {
	from, to []ref
	ports    []portSpec
}

// ref is one entry of a rule's "from"/"to" or of a group.
type ref struct {
	kind refKind
	name string // device name, group name or email; empty for refAll
	off  int    // byte offset in the file
	pos  pos
}

type refKind int

const (
	refAll refKind = iota
	refDevice
	refGroup
	refUser
)

func (r ref) String() string {
	switch r.kind {
	case refAll:
		return "*"
	case refGroup:
		return "group:" + r.name
	case refUser:
		return "user:" + r.name
	}
	return r.name
}

// portSpec is one entry of a rule's "ports".
type portSpec struct {
	proto       string // wire.ProtoTCP, ProtoUDP, ProtoICMP or ProtoAny
	first, last uint16 // tcp and udp only; 1-65535 for every port
	pos         pos
}

func (p portSpec) String() string {
	switch {
	case p.proto == "icmp" || p.proto == "*":
		return p.proto
	case p.first == 1 && p.last == 65535:
		return p.proto + "/*"
	case p.first == p.last:
		return p.proto + "/" + strconv.Itoa(int(p.first))
	}
	return fmt.Sprintf("%s/%d-%d", p.proto, p.first, p.last)
}

// pos is where a value was in the policy file; the zero pos means no file.
type pos struct{ line, col int }

// Error is a problem in a policy file, at a line and a byte column (both from 1).
type Error struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// Default is the policy of a new account: every device may talk to every other.
func Default() *Policy {
	return &Policy{allow: true}
}

// DefaultAllow reports whether the policy allows everything.
func (p *Policy) DefaultAllow() bool { return p.allow }

// Warnings lists what in the policy is valid but probably not what was meant, given the
// account's current devices: names and users that match no device (they may register
// later), and rules that have no effect because the default is allow.
func (p *Policy) Warnings(devices []Device) []string {
	names := map[string]bool{}
	users := map[string]bool{}
	for _, d := range devices {
		names[d.Name] = true
		users[strings.ToLower(d.User)] = true
	}
	var out []string
	add := func(at pos, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if at != (pos{}) {
			msg = fmt.Sprintf("%s:%d:%d: %s", p.file, at.line, at.col, msg)
		}
		out = append(out, msg)
	}
	if p.allow && len(p.rules) > 0 {
		add(p.defPos, "default is \"allow\": the rules have no effect")
	}
	check := func(refs []ref) {
		for _, r := range refs {
			switch {
			case r.kind == refDevice && !names[r.name]:
				add(r.pos, "no device named %q (yet)", r.name)
			case r.kind == refUser && !users[strings.ToLower(r.name)]:
				add(r.pos, "user %q has no devices", r.name)
			}
		}
	}
	// Document order: groups and rules may come in either order in the file.
	type located struct {
		at   pos
		refs []ref
	}
	var all []located
	for _, g := range p.groups {
		all = append(all, located{g.pos, g.members})
	}
	for _, r := range p.rules {
		for _, refs := range [][]ref{r.from, r.to} {
			if len(refs) > 0 {
				all = append(all, located{refs[0].pos, refs})
			}
		}
	}
	for _, refs := range p.approvers.refLists() {
		all = append(all, located{refs[0].pos, refs})
	}
	sort.SliceStable(all, func(i, j int) bool {
		a, b := all[i].at, all[j].at
		return a.line < b.line || a.line == b.line && a.col < b.col
	})
	for _, l := range all {
		check(l.refs)
	}
	return out
}

// jsonPolicy is the canonical JSON form written by Marshal.
type jsonPolicy struct {
	Default       string              `json:"default"`
	Groups        map[string][]string `json:"groups,omitempty"`
	Rules         []jsonRule          `json:"rules,omitempty"`
	AutoApprovers *jsonApprovers      `json:"autoApprovers,omitempty"`
}

type jsonRule struct {
	From  []string `json:"from"`
	To    []string `json:"to"`
	Ports []string `json:"ports"`
}

// Marshal returns the policy as indented JSON that Parse accepts and that compiles to the
// same filters. Groups and auto-approved routes come out sorted; everything else keeps
// its order.
func (p *Policy) Marshal() ([]byte, error) {
	jp := jsonPolicy{Default: "deny", AutoApprovers: p.marshalApprovers()}
	if p.allow {
		jp.Default = "allow"
	}
	if len(p.groups) > 0 {
		jp.Groups = map[string][]string{}
		for _, g := range p.groups {
			jp.Groups[g.name] = refStrings(g.members)
		}
	}
	for _, r := range p.rules {
		jr := jsonRule{From: refStrings(r.from), To: refStrings(r.to)}
		for _, ps := range r.ports {
			jr.Ports = append(jr.Ports, ps.String())
		}
		jp.Rules = append(jp.Rules, jr)
	}
	b, err := json.MarshalIndent(jp, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal policy: %w", err)
	}
	return append(b, '\n'), nil
}

func refStrings(refs []ref) []string {
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		out = append(out, r.String())
	}
	return out
}
