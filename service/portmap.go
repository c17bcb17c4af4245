package service

import (
	"context"
	"net/netip"

	"github.com/weftmesh/weft/mesh/portmap"
	"github.com/weftmesh/weft/wire"
)

// portMapped is a data plane that can advertise a port mapping on the gateway (the
// userspace engine: its socket is weftd's; kernel WireGuard's port is mapped by nobody).
type portMapped interface {
	SetPortMapping(ext netip.AddrPort)
}

// startPortMap makes the mapper that keeps a public port on the default gateway
// forwarded to the engine's WireGuard port, or nil when the engine cannot use one or the
// configuration says not to. Run it with the session's context: it deletes the mapping
// when that ends.
func (d *Daemon) startPortMap(eng Engine) *portmap.Mapper {
	if d.cfg.NoPortMapping {
		return nil
	}
	if _, ok := eng.(portMapped); !ok {
		return nil
	}
	pm, err := portmap.New(portmap.Config{Port: eng.ListenPort(), Logger: d.log.With("component", "portmap")})
	if err != nil {
		d.log.Warn("no port mapping", "err", err)
		return nil
	}
	return pm
}

// followPortMap hands the mapper's public address to the engine and reports whether it
// changed since last.
func followPortMap(pm *portmap.Mapper, eng Engine, last *netip.AddrPort) bool {
	if pm == nil {
		return false
	}
	ext := pm.Status().External
	if ext == *last {
		return false
	}
	*last = ext
	if pe, ok := eng.(portMapped); ok {
		pe.SetPortMapping(ext)
	}
	return true
}

// portMapView is a mapper's status for the local API.
func portMapView(s portmap.Status) *wire.PortMapping {
	v := &wire.PortMapping{Error: s.Err}
	if s.External.IsValid() {
		v.Protocol, v.Gateway, v.Internal, v.External, v.Lifetime, v.Renewed =
			s.Protocol, s.Gateway, s.Internal, s.External, s.Lifetime, s.Renewed
	}
	return v
}

// runPortMap runs the mapper until ctx ends (then it deletes the mapping).
func runPortMap(ctx context.Context, pm *portmap.Mapper) {
	if pm != nil {
		pm.Run(ctx)
	}
}
