package platform

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
)

// bsdRouter installs routes with /sbin/route and remembers them, to change or remove
// exactly those.
type bsdRouter struct {
	log *slog.Logger

	mu        sync.Mutex                    // serialises SetRoutes and Close and guards the fields below
	installed map[netip.Prefix]bsdInstalled // by destination
	closed    bool
}

// bsdInstalled is a route as it was added: through which tunnel or gateway.
type bsdInstalled struct {
	route  sysRoute
	tunnel string
	via    bsdVia
}

func newRouter(log *slog.Logger) (Router, error) {
	for _, tool := range []string{"/sbin/route", "/usr/sbin/netstat"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("routes: %s not found: %w", tool, err)
		}
	}
	return &bsdRouter{log: log, installed: map[netip.Prefix]bsdInstalled{}}, nil
}

func (r *bsdRouter) SetRoutes(iface string, routes []netip.Prefix, exclude []netip.Addr) error {
	s, err := checkRoutes(iface, routes, exclude)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("routes: set after close")
	}
	want := map[netip.Prefix]bsdInstalled{}
	vias := map[bool]bsdVia{} // by "is IPv6", looked up once
	for _, rt := range splitRoutes(s) {
		in := bsdInstalled{route: rt, tunnel: iface}
		if rt.bypass {
			is6 := rt.dst.Addr().Is6()
			via, ok := vias[is6]
			if !ok {
				family := "inet"
				if is6 {
					family = "inet6"
				}
				out, err := exec.Command("/usr/sbin/netstat", "-rn", "-f", family).Output()
				if err != nil {
					return fmt.Errorf("routes: netstat -rn -f %s: %w", family, err)
				}
				if via, err = bsdDefaultVia(string(out), iface); err != nil {
					return err
				}
				vias[is6] = via
			}
			in.via = via
		}
		want[rt.dst] = in
	}
	// New routes first, then the old ones go.
	for _, dst := range sortedDsts(want) {
		in := want[dst]
		old, had := r.installed[dst]
		if had && old == in {
			continue
		}
		op := "add"
		if had {
			op = "change"
		}
		if err := routeCmd(op, in); err != nil {
			if op != "add" || !strings.Contains(err.Error(), "File exists") {
				return err
			}
			// Left by a weftd that died: take it over.
			if err := routeCmd("change", in); err != nil {
				return err
			}
		}
		r.installed[dst] = in
	}
	for _, dst := range sortedDsts(r.installed) {
		if _, ok := want[dst]; ok {
			continue
		}
		if err := routeCmd("delete", r.installed[dst]); err != nil {
			return err
		}
		delete(r.installed, dst)
	}
	r.log.Info("routes set", "iface", iface, "routes", len(s.routes), "excluded", len(s.covered()))
	return nil
}

func (r *bsdRouter) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	var errs []error
	for _, dst := range sortedDsts(r.installed) {
		if err := routeCmd("delete", r.installed[dst]); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(r.installed, dst)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	r.closed = true
	r.log.Info("routes removed")
	return nil
}

func routeCmd(op string, in bsdInstalled) error {
	args := bsdRouteArgs(op, in.route, in.tunnel, in.via)
	if out, err := exec.Command("/sbin/route", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("routes: route %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func sortedDsts(m map[netip.Prefix]bsdInstalled) []netip.Prefix {
	var out []netip.Prefix
	for dst := range m {
		out = append(out, dst)
	}
	slices.SortFunc(out, comparePrefix)
	return out
}
