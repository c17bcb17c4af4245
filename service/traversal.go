package service

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/weftmesh/weft/mesh"
	"github.com/weftmesh/weft/mesh/control"
	"github.com/weftmesh/weft/mesh/portmap"
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
	// firstSTUNPoll is how often the STUN server list is looked for until it comes.
	firstSTUNPoll = 100 * time.Millisecond
	// endpointRefresh is how often endpoints are reported even when unchanged.
	endpointRefresh = 30 * time.Second
)

// reportEndpoints keeps the broker told of this device's endpoint candidates — its LAN
// addresses, its public mappings as STUN sees them, the gateway's port mapping (pm, nil
// when none is tried), and its NAT behaviour — reporting on change and every
// endpointRefresh, until ctx is done. A changed public mapping (roaming), changed LAN
// addresses or a signal on netChanged (the OS saw addresses or routes change) also
// rebinds the data plane, renews the port mapping and asks the broker to have every peer
// probe again; so does a new port mapping, which peers can reach at once.
func (d *Daemon) reportEndpoints(ctx context.Context, c *control.Client, eng Engine, netChanged <-chan struct{}, pm *portmap.Mapper) {
	port := eng.ListenPort()
	tr, _ := eng.(traversal)
	var lost, mapChanged <-chan struct{}
	if pl, ok := eng.(interface{ PathLost() <-chan struct{} }); ok {
		lost = pl.PathLost()
	}
	var lastMap netip.AddrPort // the port mapping's public address last handed to the engine
	if pm != nil {
		mapChanged = pm.Changed()
	}
	var last wire.EndpointsRequest
	var lastSent, lastSTUN time.Time
	var lastMapped []netip.AddrPort // what STUN last answered; a different answer means we moved
	t := time.NewTicker(endpointCheck)
	defer t.Stop()
	stunNow := false
	netMoved := false // the OS reported a change: react without waiting for STUN to tell
	for {
		req := wire.EndpointsRequest{ListenPort: port, Endpoints: mesh.LocalEndpoints(port, meshRange),
			Reflexive: last.Reflexive, NAT: last.NAT}
		lanChanged := !lastSent.IsZero() && !slices.Equal(req.Endpoints, last.Endpoints)
		moved := lanChanged || netMoved
		// After an OS event the reaction below checks STUN anyway, on the new network.
		if tr != nil && d.haveSTUN() && !netMoved && (stunNow || lanChanged || time.Since(lastSTUN) >= stunEvery) {
			lastSTUN, stunNow = time.Now(), false
			mapped := d.probeSTUN(ctx, tr)
			req.Reflexive, req.NAT = tr.Reflexive(), tr.NAT()
			// An unanswered probe proves nothing; two different answers do.
			if len(mapped) > 0 {
				moved = moved || len(lastMapped) > 0 && !slices.Equal(mapped, lastMapped)
				lastMapped = mapped
			}
		}
		if moved && pm != nil {
			pm.Refresh() // the gateway, or its address, may be another now
		}
		if moved && tr != nil {
			d.log.Info("network changed: reconnecting and probing every peer again", "public", req.Reflexive, "lan", req.Endpoints)
			tr.Rebind()
			c.Reconnect()
			if mapped := d.probeSTUN(ctx, tr); len(mapped) > 0 {
				lastMapped = mapped
			}
			req.Reflexive, req.NAT = tr.Reflexive(), tr.NAT()
			d.punchAll(ctx, c)
		} else if moved {
			// Kernel WireGuard follows its peers by itself; the broker connection, made
			// from the old network, is made again from the new one.
			d.log.Info("network changed: reconnecting to the broker", "lan", req.Endpoints)
			c.Reconnect()
		}
		netMoved = false
		newMap := followPortMap(pm, eng, &lastMap)
		if newMap && tr != nil {
			req.Reflexive, req.NAT = tr.Reflexive(), tr.NAT()
		}
		changed := lastSent.IsZero() || !slices.Equal(req.Endpoints, last.Endpoints) ||
			!slices.Equal(req.Reflexive, last.Reflexive) || req.NAT != last.NAT
		if changed || time.Since(lastSent) >= endpointRefresh {
			if err := c.UpdateEndpoints(ctx, req); err != nil {
				if ctx.Err() != nil {
					return
				}
				// The map stream reports the broker's reachability; this retries soon.
				d.log.Debug("report endpoints", "err", err)
			} else {
				lastSent = time.Now()
				if newMap && lastMap.IsValid() && !moved {
					// Peers without a direct path may now reach us there: have them probe.
					d.punchAll(ctx, c)
				}
			}
		}
		last = req
		// Until the first STUN answer (the map names the servers a moment after start),
		// look again soon: both NATs must be known before birthday probing can start.
		var soon <-chan time.Time
		if tr != nil && lastSTUN.IsZero() {
			soon = time.After(firstSTUNPoll)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-soon:
		case <-lost:
			// A direct path or the relay session stopped answering: maybe this device
			// moved without its own addresses changing (its router renumbered). Check the
			// public mapping now.
			stunNow = true
		case <-netChanged:
			netMoved = true
		case <-mapChanged:
		}
	}
}

// haveSTUN reports whether the broker has named its STUN servers yet.
func (d *Daemon) haveSTUN() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.peers.STUN()) > 0
}

// probeSTUN asks the broker's STUN servers for this device's public mapping, through the
// WireGuard socket itself.
func (d *Daemon) probeSTUN(ctx context.Context, tr traversal) []netip.AddrPort {
	d.mu.Lock()
	names := d.peers.STUN()
	d.mu.Unlock()
	servers, _ := resolveSTUN(names)
	if len(servers) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	mapped, err := tr.STUN(ctx, servers)
	if err != nil {
		d.log.Debug("STUN", "err", err)
	}
	slices.SortFunc(mapped, netip.AddrPort.Compare)
	return mapped
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
