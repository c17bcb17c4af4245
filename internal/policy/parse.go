package policy

import (
	"errors"
	"strconv"
	"strings"
)

// Parse reads a policy in its JSON form (see Policy). Any problem is an *Error naming
// filename and the line and column of the offending value; nothing is returned then.
func Parse(filename string, data []byte) (*Policy, error) {
	p, err := parse(filename, data)
	if err != nil {
		var pe *posError
		if !errors.As(err, &pe) {
			pe = &posError{msg: err.Error()}
		}
		line, col := position(data, pe.off)
		return nil, &Error{File: filename, Line: line, Col: col, Msg: pe.msg}
	}
	return p, nil
}

// parser turns the positioned JSON tree into a Policy.
type parser struct {
	data []byte
	p    *Policy
}

func (ps *parser) pos(off int) pos {
	l, c := position(ps.data, off)
	return pos{l, c}
}

func parse(filename string, data []byte) (*Policy, error) {
	root, err := parseTree(data)
	if err != nil {
		return nil, err
	}
	if root.kind != kindObject {
		return nil, errAt(root.off, "a policy is a JSON object, not %s", root.kind)
	}
	ps := &parser{data: data, p: &Policy{file: filename}}
	seen := map[string]bool{}
	var def, groups, rules, approvers *node
	for _, f := range root.fields {
		if seen[f.key] {
			return nil, errAt(f.keyOff, "duplicate field %q", f.key)
		}
		seen[f.key] = true
		switch f.key {
		case "default":
			def = f.val
		case "groups":
			groups = f.val
		case "rules":
			rules = f.val
		case "autoApprovers":
			approvers = f.val
		default:
			return nil, errAt(f.keyOff, "unknown field %q (want \"default\", \"groups\", \"rules\" or \"autoApprovers\")", f.key)
		}
	}
	if def == nil {
		return nil, errAt(root.off, "missing \"default\": say \"allow\" or \"deny\"")
	}
	if err := ps.defaultAction(def); err != nil {
		return nil, err
	}
	if groups != nil {
		if err := ps.groups(groups); err != nil {
			return nil, err
		}
	}
	if rules != nil {
		if err := ps.rules(rules); err != nil {
			return nil, err
		}
	}
	if approvers != nil {
		if err := ps.approvers(approvers); err != nil {
			return nil, err
		}
	}
	if err := ps.resolveGroups(); err != nil {
		return nil, err
	}
	return ps.p, nil
}

func (ps *parser) defaultAction(n *node) error {
	if n.kind != kindString || (n.str != "allow" && n.str != "deny") {
		return errAt(n.off, "\"default\" must be \"allow\" or \"deny\"")
	}
	ps.p.allow = n.str == "allow"
	ps.p.defPos = ps.pos(n.off)
	return nil
}

func (ps *parser) groups(n *node) error {
	if n.kind != kindObject {
		return errAt(n.off, "\"groups\" must be an object of group name to members, not %s", n.kind)
	}
	seen := map[string]bool{}
	for _, f := range n.fields {
		if err := checkGroupName(f.key); err != nil {
			return errAt(f.keyOff, "%s", err.Error())
		}
		if seen[f.key] {
			return errAt(f.keyOff, "duplicate group %q", f.key)
		}
		seen[f.key] = true
		members, err := ps.stringArray(f.val, "group "+strconv.Quote(f.key), true)
		if err != nil {
			return err
		}
		g := group{name: f.key, pos: ps.pos(f.keyOff)}
		for _, m := range members {
			r, err := ps.ref(m)
			if err != nil {
				return err
			}
			if r.kind == refAll {
				return errAt(m.off, "\"*\" cannot be a group member; use it in a rule")
			}
			g.members = append(g.members, r)
		}
		ps.p.groups = append(ps.p.groups, g)
	}
	return nil
}

func (ps *parser) rules(n *node) error {
	if n.kind != kindArray {
		return errAt(n.off, "\"rules\" must be an array, not %s", n.kind)
	}
	for _, rn := range n.elems {
		if rn.kind != kindObject {
			return errAt(rn.off, "a rule is an object with \"from\", \"to\" and \"ports\", not %s", rn.kind)
		}
		var from, to, ports *node
		for _, f := range rn.fields {
			var slot **node
			switch f.key {
			case "from":
				slot = &from
			case "to":
				slot = &to
			case "ports":
				slot = &ports
			default:
				return errAt(f.keyOff, "unknown field %q in rule (want \"from\", \"to\" and \"ports\")", f.key)
			}
			if *slot != nil {
				return errAt(f.keyOff, "duplicate field %q", f.key)
			}
			*slot = f.val
		}
		var r rule
		for _, part := range []struct {
			name string
			n    *node
			refs *[]ref
		}{{"from", from, &r.from}, {"to", to, &r.to}} {
			if part.n == nil {
				return errAt(rn.off, "rule is missing %q", part.name)
			}
			elems, err := ps.stringArray(part.n, strconv.Quote(part.name), false)
			if err != nil {
				return err
			}
			for _, e := range elems {
				ref, err := ps.ref(e)
				if err != nil {
					return err
				}
				*part.refs = append(*part.refs, ref)
			}
		}
		if ports == nil {
			return errAt(rn.off, "rule is missing \"ports\" (use [\"*\"] for everything)")
		}
		elems, err := ps.stringArray(ports, "\"ports\"", false)
		if err != nil {
			return err
		}
		for _, e := range elems {
			spec, err := parsePort(e.str)
			if err != nil {
				return errAt(e.off, "%s", err.Error())
			}
			spec.pos = ps.pos(e.off)
			r.ports = append(r.ports, spec)
		}
		ps.p.rules = append(ps.p.rules, r)
	}
	return nil
}

// stringArray checks that n is an array of strings (non-empty unless emptyOK).
func (ps *parser) stringArray(n *node, what string, emptyOK bool) ([]*node, error) {
	if n.kind != kindArray {
		return nil, errAt(n.off, "%s must be an array of strings, not %s", what, n.kind)
	}
	if len(n.elems) == 0 && !emptyOK {
		return nil, errAt(n.off, "%s is empty", what)
	}
	for _, e := range n.elems {
		if e.kind != kindString {
			return nil, errAt(e.off, "%s must hold strings, not %s", what, e.kind)
		}
	}
	return n.elems, nil
}

// ref parses a device name, group:NAME, user:EMAIL or "*".
func (ps *parser) ref(n *node) (ref, error) {
	s := n.str
	r := ref{off: n.off, pos: ps.pos(n.off)}
	var err error
	switch {
	case s == "":
		err = errors.New("empty name")
	case s == "*":
		r.kind = refAll
	case strings.HasPrefix(s, "group:"):
		r.kind, r.name = refGroup, strings.TrimPrefix(s, "group:")
		err = checkGroupName(r.name)
	case strings.HasPrefix(s, "user:"):
		r.kind, r.name = refUser, strings.TrimPrefix(s, "user:")
		err = checkEmail(r.name)
	case strings.Contains(s, ":"):
		err = errors.New("unknown reference " + strconv.Quote(s) + ": use a device name, group:NAME, user:EMAIL or *")
	default:
		r.kind, r.name = refDevice, s
		err = checkDeviceName(s)
	}
	if err != nil {
		return ref{}, errAt(n.off, "%s", err.Error())
	}
	return r, nil
}

// resolveGroups checks that every group:NAME names a group and that no group contains
// itself, directly or through others.
func (ps *parser) resolveGroups() error {
	p := ps.p
	byName := map[string]int{}
	for i, g := range p.groups {
		byName[g.name] = i
	}
	// Unknown references, in document order.
	var first *ref
	check := func(refs []ref) {
		for i := range refs {
			r := &refs[i]
			if r.kind != refGroup {
				continue
			}
			if _, ok := byName[r.name]; ok {
				continue
			}
			if first == nil || r.off < first.off {
				first = r
			}
		}
	}
	for _, g := range p.groups {
		check(g.members)
	}
	for _, r := range p.rules {
		check(r.from)
		check(r.to)
	}
	for _, refs := range p.approvers.refLists() {
		check(refs)
	}
	if first != nil {
		return errAt(first.off, "unknown group %q", first.name)
	}

	// Cycles: depth-first search, reporting the reference that closes the loop.
	const (
		unvisited = iota
		active
		done
	)
	state := make([]int, len(p.groups))
	var stack []string
	var visit func(i int) error
	visit = func(i int) error {
		state[i] = active
		stack = append(stack, p.groups[i].name)
		for _, m := range p.groups[i].members {
			if m.kind != refGroup {
				continue
			}
			j := byName[m.name]
			switch state[j] {
			case active:
				at := 0
				for k, name := range stack {
					if name == m.name {
						at = k
					}
				}
				loop := append(append([]string{}, stack[at:]...), m.name)
				return errAt(m.off, "group cycle: %s", strings.Join(loop, " -> "))
			case unvisited:
				if err := visit(j); err != nil {
					return err
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[i] = done
		return nil
	}
	for i := range p.groups {
		if state[i] == unvisited {
			if err := visit(i); err != nil {
				return err
			}
		}
	}
	return nil
}

// parsePort parses one entry of "ports".
func parsePort(s string) (portSpec, error) {
	switch s {
	case "*", "icmp":
		return portSpec{proto: s}, nil
	case "":
		return portSpec{}, errors.New("empty port")
	}
	proto, ports, ok := strings.Cut(s, "/")
	if proto != "tcp" && proto != "udp" {
		return portSpec{}, errors.New("unknown protocol in " + strconv.Quote(s) + ": use tcp/N, tcp/N-M, tcp/*, udp/…, icmp or *")
	}
	if !ok || ports == "" {
		return portSpec{}, errors.New("missing port in " + strconv.Quote(s) + ": use " + proto + "/N, " + proto + "/N-M or " + proto + "/*")
	}
	if ports == "*" {
		return portSpec{proto: proto, first: 1, last: 65535}, nil
	}
	lo, hi, isRange := strings.Cut(ports, "-")
	first, err := parsePortNumber(lo)
	if err != nil {
		return portSpec{}, errors.New(err.Error() + " in " + strconv.Quote(s))
	}
	last := first
	if isRange {
		if last, err = parsePortNumber(hi); err != nil {
			return portSpec{}, errors.New(err.Error() + " in " + strconv.Quote(s))
		}
		if first > last {
			return portSpec{}, errors.New("port range " + strconv.Quote(s) + " ends before it starts")
		}
	}
	return portSpec{proto: proto, first: first, last: last}, nil
}

func parsePortNumber(s string) (uint16, error) {
	// Digits only, so that "+22" or " 22" get the same clear message as "ssh".
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, errors.New("invalid port " + strconv.Quote(s))
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 || n > 65535 {
		return 0, errors.New("port " + s + " out of range 1-65535")
	}
	return uint16(n), nil
}

// checkDeviceName accepts a DNS label: a-z, 0-9 and '-', 1-63 long, no '-' at either end.
func checkDeviceName(s string) error {
	ok := len(s) <= 63 && s[0] != '-' && s[len(s)-1] != '-'
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-'
	}
	if !ok {
		return errors.New("invalid device name " + strconv.Quote(s) + ": a device name is a DNS label (a-z, 0-9 and '-', at most 63)")
	}
	return nil
}

func checkGroupName(s string) error {
	if s == "" {
		return errors.New("empty group name")
	}
	ok := len(s) <= 63
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
	}
	if !ok {
		return errors.New("invalid group name " + strconv.Quote(s) + ": use letters, digits, '-', '_' and '.', at most 63")
	}
	return nil
}

func checkEmail(s string) error {
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || domain == "" || strings.ContainsAny(s, " \t\r\n") || strings.Contains(domain, "@") {
		return errors.New("invalid email " + strconv.Quote(s) + " in user:EMAIL")
	}
	return nil
}
