package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/weftmesh/weft/internal/dnsname"
	"github.com/weftmesh/weft/mesh"
	"github.com/weftmesh/weft/mesh/control"
	"github.com/weftmesh/weft/platform"
	"github.com/weftmesh/weft/wire"
)

// GatewayBackend is the gateway and virtual device part of the local API; *Daemon
// implements it. Every method either does what it says or returns an error and changes
// nothing.
type GatewayBackend interface {
	Gateways(ctx context.Context) (wire.Gateways, error)
	AdvertiseRoutes(ctx context.Context, req wire.RoutesRequest) (wire.RoutesResponse, error)
	UseGateway(ctx context.Context, req wire.GatewayUseRequest) (wire.Gateways, error)
	ClearGateway(ctx context.Context, req wire.GatewayClearRequest) (wire.Gateways, error)
	VirtualDevices(ctx context.Context) (wire.VDevList, error)
	AddVirtualDevice(ctx context.Context, req wire.VDevRequest) (wire.VDevResponse, error)
	RemoveVirtualDevice(ctx context.Context, req wire.VDevRemoveRequest) (wire.VDevList, error)
}

// Gateways lists the peers that offer routes, this device's choices and its own routes.
func (d *Daemon) Gateways(context.Context) (wire.Gateways, error) {
	if err := d.needLoggedIn(); err != nil {
		return wire.Gateways{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.gatewaysLocked(), nil
}

func (d *Daemon) gatewaysLocked() wire.Gateways {
	g := wire.Gateways{Gateways: []wire.GatewayInfo{}, Choices: resolveChoices(d.st.GatewayRoutes, &d.peers)}
	if d.st.Device != nil {
		g.Advertised, g.Approved = d.st.Device.Advertised, d.st.Device.Routes
	}
	for _, p := range d.peers.List() {
		if p.Kind == wire.KindVirtual || len(p.Advertised) == 0 && len(p.Routes) == 0 {
			continue
		}
		info := wire.GatewayInfo{ID: p.ID, Name: p.Name, Address: p.Address, Online: p.Online, Advertised: p.Advertised, Routes: p.Routes}
		for _, c := range d.st.GatewayRoutes {
			if c.Gateway == p.ID {
				info.Using = append(info.Using, c.Route)
			}
		}
		g.Gateways = append(g.Gateways, info)
	}
	return g
}

// UseGateway sends a route, or all the gateway's approved routes, through a gateway, in
// place of any gateway chosen for the same route before.
func (d *Daemon) UseGateway(ctx context.Context, req wire.GatewayUseRequest) (wire.Gateways, error) {
	return d.changeChoices(func(choices []gatewayChoice, self *wire.Device, m *PeerMap) ([]gatewayChoice, error) {
		return applyUse(choices, self, m, req)
	})
}

// ClearGateway drops gateway choices: of one gateway, for one route, or all of them.
func (d *Daemon) ClearGateway(ctx context.Context, req wire.GatewayClearRequest) (wire.Gateways, error) {
	return d.changeChoices(func(choices []gatewayChoice, _ *wire.Device, m *PeerMap) ([]gatewayChoice, error) {
		return applyClear(choices, m, req)
	})
}

// changeChoices computes new choices from the current ones, saves them, and has the
// tunnel's peers and routes follow. A failed change or save changes nothing.
func (d *Daemon) changeChoices(change func([]gatewayChoice, *wire.Device, *PeerMap) ([]gatewayChoice, error)) (wire.Gateways, error) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	if err := d.needLoggedIn(); err != nil {
		return wire.Gateways{}, err
	}
	d.mu.Lock()
	next, err := change(slices.Clone(d.st.GatewayRoutes), d.st.Device, &d.peers)
	d.mu.Unlock()
	if err != nil {
		return wire.Gateways{}, err
	}
	if err := d.commit(func(st *State, _ *PeerMap) { st.GatewayRoutes = next }); err != nil {
		return wire.Gateways{}, err
	}
	d.mu.Lock()
	if err := d.pushPeersLocked(); err != nil {
		d.log.Warn("peers not updated for the gateway choice; the next map retries", "err", err)
	}
	if d.sess != nil {
		d.sess.net.poke()
	}
	g := d.gatewaysLocked()
	d.mu.Unlock()
	d.changed()
	return g, nil
}

// applyUse returns choices with req applied, or why it cannot be.
func applyUse(choices []gatewayChoice, self *wire.Device, m *PeerMap, req wire.GatewayUseRequest) ([]gatewayChoice, error) {
	g, err := findGateway(self, m, req.Gateway)
	if err != nil {
		return nil, err
	}
	if len(g.Routes) == 0 {
		adv := "it advertises none"
		if len(g.Advertised) > 0 {
			adv = fmt.Sprintf("it advertises %s; an administrator approves them with weft-broker route approve", prefixList(g.Advertised))
		}
		return nil, errorf(http.StatusConflict, "%s has no approved routes: %s", g.Name, adv)
	}
	routes := g.Routes
	if req.Route.IsValid() {
		if req.Route != req.Route.Masked() {
			return nil, errorf(http.StatusBadRequest, "route %s is not a network address: use %s", req.Route, req.Route.Masked())
		}
		if !slices.Contains(g.Routes, req.Route) {
			return nil, errorf(http.StatusConflict, "route %s of %s is not approved (approved: %s)", req.Route, g.Name, prefixList(g.Routes))
		}
		routes = []netip.Prefix{req.Route}
	}
	for _, r := range routes {
		choices = slices.DeleteFunc(choices, func(c gatewayChoice) bool { return c.Route == r })
		choices = append(choices, gatewayChoice{Route: r, Gateway: g.ID})
	}
	slices.SortFunc(choices, func(a, b gatewayChoice) int { return comparePrefixes(a.Route, b.Route) })
	return choices, nil
}

// applyClear returns choices without those req names, or an error when it names a
// gateway or route that has none.
func applyClear(choices []gatewayChoice, m *PeerMap, req wire.GatewayClearRequest) ([]gatewayChoice, error) {
	q := strings.TrimSpace(req.Gateway)
	if q == "" && !req.Route.IsValid() {
		return nil, nil
	}
	id := q
	if p, ok := m.Find(q); ok {
		id = p.ID
	} else if p, ok := m.ByID(q); ok {
		id = p.ID
	}
	out := slices.DeleteFunc(slices.Clone(choices), func(c gatewayChoice) bool {
		return (q == "" || c.Gateway == id) && (!req.Route.IsValid() || c.Route == req.Route.Masked())
	})
	if len(out) == len(choices) {
		switch {
		case q != "" && req.Route.IsValid():
			return nil, errorf(http.StatusNotFound, "route %s does not go through %s", req.Route, q)
		case q != "":
			return nil, errorf(http.StatusNotFound, "no route goes through %s", q)
		default:
			return nil, errorf(http.StatusNotFound, "no gateway is chosen for %s", req.Route)
		}
	}
	return out, nil
}

// findGateway resolves the device a user named as a gateway.
func findGateway(self *wire.Device, m *PeerMap, q string) (wire.Device, error) {
	q = strings.TrimSpace(q)
	if q == "" {
		return wire.Device{}, errorf(http.StatusBadRequest, "which gateway? give a device's name, FQDN or mesh IP")
	}
	g, ok := m.Find(q)
	if !ok {
		g, ok = m.ByID(q)
	}
	if !ok {
		if self != nil && (strings.EqualFold(q, self.Name) || q == self.ID || q == self.Address.String()) {
			return wire.Device{}, errorf(http.StatusBadRequest, "%s is this device: choose another device as the gateway", q)
		}
		return wire.Device{}, errorf(http.StatusNotFound, "no device %q in this mesh (weft gateway list shows the gateways)", q)
	}
	if g.Kind == wire.KindVirtual || g.PublicKey.IsZero() {
		return wire.Device{}, errorf(http.StatusBadRequest, "%s is a virtual device: it cannot route for others", g.Name)
	}
	return g, nil
}

func prefixList(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "none"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// gatewayAllowedLocked are the extra allowed IPs of each peer. The caller holds mu.
func (d *Daemon) gatewayAllowedLocked() map[wire.Key][]netip.Prefix {
	selfID := ""
	if d.st.Device != nil {
		selfID = d.st.Device.ID
	}
	return gatewayAllowedIPs(selfID, d.st.GatewayRoutes, &d.peers)
}

// netWantFunc returns what netConfig asks for the tunnel eng: the OS configuration the
// current map and choices call for.
func (d *Daemon) netWantFunc(eng Engine) func(context.Context) netWant {
	hosts := &hostCache{}
	return func(ctx context.Context) netWant {
		d.mu.Lock()
		if d.engine != eng || d.st.Device == nil {
			d.mu.Unlock()
			return netWant{}
		}
		self := *d.st.Device
		w := netWant{iface: eng.InterfaceName(), routes: activeRoutes(d.st.GatewayRoutes, &d.peers)}
		gwRoutes, virtual, skipped := gatewayRole(&self, &d.peers)
		var names []string
		var peers []wire.Device
		var live []netip.AddrPort
		if len(w.routes) > 0 {
			names = append([]string{brokerHost(d.st.Broker)}, d.peers.STUN()...)
			for _, r := range d.peers.Relays() {
				names = append(names, r.UDP, r.TLS)
			}
			peers = d.peers.List()
			stats, err := eng.Stats()
			if err != nil {
				d.log.Warn("read tunnel stats", "err", err)
			}
			for _, st := range stats {
				live = append(live, st.Endpoint, st.PathAddr)
			}
		}
		d.mu.Unlock()

		for _, s := range skipped {
			d.log.Warn("gateway: " + s)
		}
		if len(gwRoutes) > 0 || len(virtual) > 0 {
			w.gateway = platform.GatewayConfig{TunnelIface: w.iface, MeshPrefix: meshRange, Self: self.Address,
				Routes: gwRoutes, Virtual: virtual}
		}
		if len(w.routes) > 0 {
			w.exclude = bypassAddrs(hosts.resolve(ctx, names), peers, live)
		}
		return w
	}
}

// AdvertiseRoutes replaces the networks this device offers as a gateway, at the broker.
func (d *Daemon) AdvertiseRoutes(ctx context.Context, req wire.RoutesRequest) (wire.RoutesResponse, error) {
	if req.Advertise == nil {
		return wire.RoutesResponse{}, errorf(http.StatusBadRequest, "advertise is missing: give the networks to advertise, [] for none")
	}
	if len(req.Advertise) > wire.MaxRoutes {
		return wire.RoutesResponse{}, errorf(http.StatusBadRequest, "%d networks: at most %d can be advertised", len(req.Advertise), wire.MaxRoutes)
	}
	routes := make([]netip.Prefix, 0, len(req.Advertise))
	for _, p := range req.Advertise {
		if err := wire.ValidateRoute(p); err != nil {
			return wire.RoutesResponse{}, &Error{Code: http.StatusBadRequest, Err: err}
		}
		routes = append(routes, p)
	}
	slices.SortFunc(routes, comparePrefixes)
	routes = slices.Compact(routes)
	var resp wire.RoutesResponse
	err := d.withBroker(ctx, "advertise routes", func(c *control.Client) (err error) {
		resp, err = c.AdvertiseRoutes(ctx, routes)
		return err
	})
	return resp, err
}

// VirtualDevices lists the virtual devices this device hosts, as the map has them.
func (d *Daemon) VirtualDevices(context.Context) (wire.VDevList, error) {
	if err := d.needLoggedIn(); err != nil {
		return wire.VDevList{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.vdevsLocked(""), nil
}

// vdevsLocked are this device's virtual devices, without the one called except.
func (d *Daemon) vdevsLocked(except string) wire.VDevList {
	l := wire.VDevList{VDevs: []wire.Device{}}
	if d.st.Device == nil {
		return l
	}
	for _, p := range d.peers.List() {
		if p.Kind == wire.KindVirtual && p.Gateway == d.st.Device.ID && p.Name != except {
			l.VDevs = append(l.VDevs, p)
		}
	}
	return l
}

// AddVirtualDevice registers a LAN device behind this device, at the broker.
func (d *Daemon) AddVirtualDevice(ctx context.Context, req wire.VDevRequest) (wire.VDevResponse, error) {
	req.Name = strings.TrimSpace(req.Name)
	if err := dnsname.ValidLabel(req.Name); err != nil {
		return wire.VDevResponse{}, &Error{Code: http.StatusBadRequest, Err: err}
	}
	if err := wire.ValidateLANIP(req.LANIP); err != nil {
		return wire.VDevResponse{}, &Error{Code: http.StatusBadRequest, Err: err}
	}
	if !req.LANIP.Is4() || !req.LANIP.IsGlobalUnicast() {
		return wire.VDevResponse{}, errorf(http.StatusBadRequest, "LAN IP %s: a gateway translates routable IPv4 LAN addresses only", req.LANIP)
	}
	local := d.cfg.LocalPrefixes
	if local == nil {
		local = mesh.LocalPrefixes
	}
	if err := checkOnLAN(req.LANIP, local()); err != nil {
		return wire.VDevResponse{}, err
	}
	var resp wire.VDevResponse
	err := d.withBroker(ctx, "add virtual device", func(c *control.Client) (err error) {
		resp.Device, err = c.AddVirtualDevice(ctx, req)
		return err
	})
	return resp, err
}

// checkOnLAN says why lanIP cannot be a virtual device of a host whose addresses, with
// their subnets, are local: the gateway DNATs to it and answers for it on the LAN, so it
// must be a neighbour on one of the host's IPv4 networks (never through the tunnel, whose
// address is in the mesh range) and not the host itself.
func checkOnLAN(lanIP netip.Addr, local []netip.Prefix) error {
	var nets []netip.Prefix // in the host's order, as `ip addr` shows them
	for _, p := range local {
		if !p.Addr().Is4() || meshRange.Contains(p.Addr()) {
			continue
		}
		if p.Addr() == lanIP {
			return errorf(http.StatusBadRequest, "%s is this device's own address: give the LAN device's", lanIP)
		}
		if !slices.Contains(nets, p.Masked()) {
			nets = append(nets, p.Masked())
		}
	}
	if slices.ContainsFunc(nets, func(n netip.Prefix) bool { return n.Contains(lanIP) }) {
		return nil
	}
	return errorf(http.StatusBadRequest, "%s is on none of this device's networks (%s)", lanIP, prefixList(nets))
}

// RemoveVirtualDevice removes one of this device's virtual devices, at the broker.
func (d *Daemon) RemoveVirtualDevice(ctx context.Context, req wire.VDevRemoveRequest) (wire.VDevList, error) {
	name := strings.TrimSpace(req.Name)
	if name == "" {
		return wire.VDevList{}, errorf(http.StatusBadRequest, "which virtual device? give its name")
	}
	err := d.withBroker(ctx, "remove virtual device", func(c *control.Client) error {
		return c.RemoveVirtualDevice(ctx, name)
	})
	if err != nil {
		return wire.VDevList{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.vdevsLocked(name), nil
}

// withBroker runs call with a client of this device's broker. The broker refusing is a
// 400 with its one-line reason; not reaching it is a 502.
func (d *Daemon) withBroker(ctx context.Context, what string, call func(*control.Client) error) error {
	if err := d.needLoggedIn(); err != nil {
		return err
	}
	d.mu.Lock()
	st, key := d.st, d.key
	d.mu.Unlock()
	c, err := control.New(control.Config{BrokerURL: st.Broker, CAPEM: st.CAPEM, PrivateKey: key, Logger: d.log})
	if err != nil {
		return err
	}
	defer c.Close()
	err = call(c)
	var apiErr *control.APIError
	var rev *control.RevokedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &rev):
		return errorf(http.StatusConflict, "%s: %v", what, err)
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound:
		return errorf(http.StatusNotFound, "%s: %s", what, apiErr.Message)
	case errors.As(err, &apiErr) && apiErr.Status < 500:
		return errorf(http.StatusBadRequest, "%s: the broker refused: %s", what, apiErr.Message)
	}
	return errorf(http.StatusBadGateway, "%s at %s: %v", what, st.Broker, err)
}
