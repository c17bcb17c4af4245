package service

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/weftmesh/weft/mesh"
	"github.com/weftmesh/weft/mesh/control"
	"github.com/weftmesh/weft/wire"
)

// traversal is what a data plane offers for NAT traversal. The userspace engine has it;
// kernel WireGuard does not (its socket is the kernel's), and then weftd reports LAN
// endpoints only.
type traversal interface {
	SetRelays([]wire.RelayInfo)
	Punch(peer wire.Key)
	Rebind()
	Reflexive() []netip.AddrPort
	NAT() string
	STUN(ctx context.Context, servers []netip.AddrPort) ([]netip.AddrPort, error)
}

const (
	// endpointCheck is how often the host's addresses are looked at for changes.
	endpointCheck = 5 * time.Second
	// stunEvery is how often the public mapping is checked; a new one means this device
	// moved (or its NAT forgot it), and every peer is probed again.
	stunEvery = 15 * time.Second
	// endpointRefresh is how often endpoints are reported even when unchanged.
	endpointRefresh = 30 * time.Second
)

// reportEndpoints keeps the broker told of this device's endpoint candidates — its LAN
// addresses, its public mappings as STUN sees them, and its NAT behaviour — reporting on
// change and every endpointRefresh, until ctx is done. A changed public mapping (roaming)
// also rebinds the data plane and asks the broker to have every peer probe again.
func (d *Daemon) reportEndpoints(ctx context.Context, c *control.Client, eng Engine) {
	port := eng.ListenPort()
	tr, _ := eng.(traversal)
	var last wire.EndpointsRequest
	var lastSent, lastSTUN time.Time
	var lastReflexive []netip.AddrPort
	t := time.NewTicker(endpointCheck)
	defer t.Stop()
	for {
		req := wire.EndpointsRequest{ListenPort: port, Endpoints: mesh.LocalEndpoints(port, meshRange)}
		lanChanged := !slices.Equal(req.Endpoints, last.Endpoints)
		if tr != nil && (lanChanged || time.Since(lastSTUN) >= stunEvery) {
			lastSTUN = time.Now()
			d.probeSTUN(ctx, tr)
			req.Reflexive, req.NAT = tr.Reflexive(), tr.NAT()
			if lastReflexive != nil && !slices.Equal(req.Reflexive, lastReflexive) || !lastSent.IsZero() && lanChanged {
				d.log.Info("network changed: probing every peer again", "public", req.Reflexive, "lan", req.Endpoints)
				tr.Rebind()
				d.punchAll(ctx, c)
			}
			lastReflexive = req.Reflexive
		} else {
			req.Reflexive, req.NAT = last.Reflexive, last.NAT
		}
		changed := lastSent.IsZero() || lanChanged || !slices.Equal(req.Reflexive, last.Reflexive) || req.NAT != last.NAT
		if changed || time.Since(lastSent) >= endpointRefresh {
			if err := c.UpdateEndpoints(ctx, req); err != nil {
				if ctx.Err() != nil {
					return
				}
				// The map stream reports the broker's reachability; this retries soon.
				d.log.Debug("report endpoints", "err", err)
			} else {
				last, lastSent = req, time.Now()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probeSTUN asks the broker's STUN servers for this device's public mapping, through the
// WireGuard socket itself.
func (d *Daemon) probeSTUN(ctx context.Context, tr traversal) {
	d.mu.Lock()
	names := d.peers.STUN()
	d.mu.Unlock()
	var servers []netip.AddrPort
	for _, n := range names {
		if ap, err := netip.ParseAddrPort(n); err == nil {
			servers = append(servers, ap)
			continue
		}
		if ua, err := net.ResolveUDPAddr("udp", n); err == nil {
			servers = append(servers, ua.AddrPort())
		}
	}
	if len(servers) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := tr.STUN(ctx, servers); err != nil {
		d.log.Debug("STUN", "err", err)
	}
}

// punchAll asks the broker to have every peer probe this device again.
func (d *Daemon) punchAll(ctx context.Context, c *control.Client) {
	d.mu.Lock()
	peers := d.peers.List()
	d.mu.Unlock()
	for _, p := range peers {
		if err := c.Punch(ctx, p.ID); err != nil {
			d.log.Debug("punch", "peer", p.Name, "err", err)
		}
	}
}
