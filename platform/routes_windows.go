package platform

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"

	"golang.org/x/sys/windows"
	"golang.zx2c4.com/wireguard/windows/tunnel/winipcfg"
)

// winRouter installs routes through the IP Helper API on the tunnel adapter (found by its
// LUID) and remembers them, to change or remove exactly those. A default route is split in
// halves and each excluded address a route covers gets a host route through the
// interface and next hop of the system's best default route (splitRoutes).
type winRouter struct {
	log *slog.Logger

	mu        sync.Mutex                    // serialises SetRoutes and Close and guards the fields below
	installed map[netip.Prefix]winInstalled // by destination
	closed    bool
}

// winInstalled is a route as it was added.
type winInstalled struct {
	dst     netip.Prefix
	luid    winipcfg.LUID
	nextHop netip.Addr // unspecified: on-link
}

func newRouter(log *slog.Logger) (Router, error) {
	return &winRouter{log: log, installed: map[netip.Prefix]winInstalled{}}, nil
}

func (r *winRouter) SetRoutes(iface string, routes []netip.Prefix, exclude []netip.Addr) error {
	s, err := checkRoutes(iface, routes, exclude)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("routes: set after close")
	}
	want := map[netip.Prefix]winInstalled{}
	if split := splitRoutes(s); len(split) > 0 {
		ifc, err := net.InterfaceByName(iface)
		if err != nil {
			return fmt.Errorf("routes: find interface %s: %w", iface, err)
		}
		luid, err := winipcfg.LUIDFromIndex(uint32(ifc.Index))
		if err != nil {
			return fmt.Errorf("routes: LUID of interface %s: %w", iface, err)
		}
		vias := map[bool]winInstalled{} // default route by "is IPv6", looked up once
		for _, rt := range split {
			is6 := rt.dst.Addr().Is6()
			in := winInstalled{dst: rt.dst, luid: luid, nextHop: netip.IPv4Unspecified()}
			if is6 {
				in.nextHop = netip.IPv6Unspecified()
			}
			if rt.bypass {
				via, ok := vias[is6]
				if !ok {
					if via, err = winDefaultRoute(is6, luid); err != nil {
						return err
					}
					vias[is6] = via
				}
				in.luid, in.nextHop = via.luid, via.nextHop
			}
			want[rt.dst] = in
		}
	}
	// New routes first (a changed one exists twice for a moment), then the old ones go.
	for _, dst := range winSorted(want) {
		in := want[dst]
		old, had := r.installed[dst]
		if had && old == in {
			continue
		}
		if err := in.luid.AddRoute(in.dst, in.nextHop, 0); err != nil && !errors.Is(err, windows.ERROR_OBJECT_ALREADY_EXISTS) {
			return fmt.Errorf("routes: add route %s: %w", in.dst, err)
		}
		r.installed[dst] = in
		if had {
			if err := old.delete(); err != nil {
				return err
			}
		}
	}
	for _, dst := range winSorted(r.installed) {
		if _, ok := want[dst]; ok {
			continue
		}
		if err := r.installed[dst].delete(); err != nil {
			return err
		}
		delete(r.installed, dst)
	}
	r.log.Info("routes set", "iface", iface, "routes", len(s.routes), "excluded", len(s.covered()))
	return nil
}

func (r *winRouter) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	var errs []error
	for _, dst := range winSorted(r.installed) {
		if err := r.installed[dst].delete(); err != nil {
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

func (in winInstalled) delete() error {
	if err := in.luid.DeleteRoute(in.dst, in.nextHop); err != nil && !errors.Is(err, windows.ERROR_NOT_FOUND) {
		return fmt.Errorf("routes: remove route %s: %w", in.dst, err)
	}
	return nil
}

// winDefaultRoute is the interface and next hop of the system's best default route of a
// family outside the tunnel: the lowest route plus interface metric, as Windows picks.
func winDefaultRoute(is6 bool, tunnel winipcfg.LUID) (winInstalled, error) {
	family := winipcfg.AddressFamily(windows.AF_INET)
	if is6 {
		family = windows.AF_INET6
	}
	rows, err := winipcfg.GetIPForwardTable2(family)
	if err != nil {
		return winInstalled{}, fmt.Errorf("routes: read the routing table: %w", err)
	}
	var best winInstalled
	bestCost := uint64(1) << 63
	for i := range rows {
		row := &rows[i]
		if row.DestinationPrefix.Prefix().Bits() != 0 || row.InterfaceLUID == tunnel {
			continue
		}
		ifRow, err := row.InterfaceLUID.IPInterface(family)
		if err != nil || !ifRow.Connected {
			continue
		}
		if cost := uint64(row.Metric) + uint64(ifRow.Metric); cost < bestCost {
			best, bestCost = winInstalled{luid: row.InterfaceLUID, nextHop: row.NextHop.Addr()}, cost
		}
	}
	if !best.nextHop.IsValid() {
		return winInstalled{}, errors.New("routes: no default route outside the tunnel to keep excluded addresses out of it")
	}
	return best, nil
}

func winSorted(m map[netip.Prefix]winInstalled) []netip.Prefix {
	var out []netip.Prefix
	for dst := range m {
		out = append(out, dst)
	}
	slices.SortFunc(out, comparePrefix)
	return out
}
