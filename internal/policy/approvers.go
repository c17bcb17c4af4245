package policy

import (
	"errors"
	"net/netip"
	"strconv"

	"github.com/weftmesh/weft/wire"
)

// autoApprovers say which devices get the routes they advertise approved without an
// administrator:
//
//	"autoApprovers": {
//	  "routes":   {"192.168.1.0/24": ["group:gw", "user:ann@example.com", "gw1"]},
//	  "exitNode": ["group:gw"]
//	}
//
// A route is approved for a device that one of its entries names if it lies inside that
// network (the network itself or a more specific one); exit routes (0.0.0.0/0, ::/0) only
// through "exitNode".
type autoApprovers struct {
	set      bool // the section is present (kept by Marshal even when empty)
	pos      pos
	routes   []routeApprover
	exitNode []ref
}

type routeApprover struct {
	prefix    netip.Prefix
	pos       pos
	approvers []ref
}

// AutoApproves reports whether the policy's autoApprovers approve route when d
// advertises it.
func (p *Policy) AutoApproves(d Device, route netip.Prefix) bool {
	if d.Gateway != "" || !route.IsValid() {
		return false // virtual devices route nothing
	}
	r := newResolver(p, []Device{d})
	if wire.IsExitRoute(route) {
		return len(r.expand(p.approvers.exitNode)) > 0
	}
	for _, ra := range p.approvers.routes {
		if ra.prefix.Addr().Is4() == route.Addr().Is4() && ra.prefix.Bits() <= route.Bits() &&
			ra.prefix.Contains(route.Addr()) && len(r.expand(ra.approvers)) > 0 {
			return true
		}
	}
	return false
}

// approvers parses the "autoApprovers" section.
func (ps *parser) approvers(n *node) error {
	if n.kind != kindObject {
		return errAt(n.off, "\"autoApprovers\" must be an object with \"routes\" and \"exitNode\", not %s", n.kind)
	}
	a := &ps.p.approvers
	a.set, a.pos = true, ps.pos(n.off)
	var routes, exit *node
	for _, f := range n.fields {
		var slot **node
		switch f.key {
		case "routes":
			slot = &routes
		case "exitNode":
			slot = &exit
		default:
			return errAt(f.keyOff, "unknown field %q in autoApprovers (want \"routes\" or \"exitNode\")", f.key)
		}
		if *slot != nil {
			return errAt(f.keyOff, "duplicate field %q", f.key)
		}
		*slot = f.val
	}
	if routes != nil {
		if routes.kind != kindObject {
			return errAt(routes.off, "\"routes\" must be an object of network to approvers, not %s", routes.kind)
		}
		seen := map[netip.Prefix]bool{}
		for _, f := range routes.fields {
			prefix, err := parseApprovedRoute(f.key)
			if err != nil {
				return errAt(f.keyOff, "%s", err.Error())
			}
			if seen[prefix] {
				return errAt(f.keyOff, "duplicate route %q", f.key)
			}
			seen[prefix] = true
			refs, err := ps.refList(f.val, "approvers of "+strconv.Quote(f.key))
			if err != nil {
				return err
			}
			a.routes = append(a.routes, routeApprover{prefix: prefix, pos: ps.pos(f.keyOff), approvers: refs})
		}
	}
	if exit != nil {
		refs, err := ps.refList(exit, "\"exitNode\"")
		if err != nil {
			return err
		}
		a.exitNode = refs
	}
	return nil
}

// refList parses a non-empty array of references.
func (ps *parser) refList(n *node, what string) ([]ref, error) {
	elems, err := ps.stringArray(n, what, false)
	if err != nil {
		return nil, err
	}
	var out []ref
	for _, e := range elems {
		r, err := ps.ref(e)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// parseApprovedRoute parses a key of "routes": a network that may be advertised, not an
// exit route.
func parseApprovedRoute(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, errors.New("invalid route " + strconv.Quote(s) + ": want a network like 192.168.1.0/24")
	}
	if wire.IsExitRoute(p) && p == p.Masked() {
		return p, errors.New("route " + s + " is an exit route: approve exit nodes with \"exitNode\"")
	}
	if err := wire.ValidateRoute(p); err != nil {
		return p, err
	}
	return p, nil
}

// marshalApprovers is the canonical JSON form of the section, nil if it is absent.
func (p *Policy) marshalApprovers() *jsonApprovers {
	a := p.approvers
	if !a.set {
		return nil
	}
	out := &jsonApprovers{}
	if len(a.routes) > 0 {
		out.Routes = map[string][]string{}
		for _, r := range a.routes {
			out.Routes[r.prefix.String()] = refStrings(r.approvers)
		}
	}
	if len(a.exitNode) > 0 {
		out.ExitNode = refStrings(a.exitNode)
	}
	return out
}

type jsonApprovers struct {
	Routes   map[string][]string `json:"routes,omitempty"`
	ExitNode []string            `json:"exitNode,omitempty"`
}

// refLists are the section's lists of references, in document order.
func (a autoApprovers) refLists() [][]ref {
	var out [][]ref
	for _, r := range a.routes {
		out = append(out, r.approvers)
	}
	if len(a.exitNode) > 0 {
		out = append(out, a.exitNode)
	}
	return out
}
