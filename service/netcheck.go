package service

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/weftmesh/weft/mesh"
	"github.com/weftmesh/weft/wire"
)

// NetcheckBackend is a Backend that can check the network; the local API serves it on
// wire.LocalPathNetcheck when the Backend has it.
type NetcheckBackend interface {
	// Netcheck probes the network (about wire.NetcheckTimeout at most) and reports what
	// it found; what it could not check is in Notes, not an error.
	Netcheck(ctx context.Context) (wire.Netcheck, error)
}

// Netcheck checks the network this device is on, the way its tunnel uses it: STUN from
// the WireGuard socket itself (so the mappings are the tunnel's), every relay of the map
// over UDP and TLS, and the host's LAN addresses. A device that is not logged in knows no
// broker, hence no STUN servers or relays: it reports its addresses and says so.
func (d *Daemon) Netcheck(ctx context.Context) (wire.Netcheck, error) {
	st := d.Status(ctx)
	d.mu.Lock()
	loggedIn := d.st.LoggedIn
	stunNames, relays := d.peers.STUN(), d.peers.Relays()
	eng := d.engine
	d.mu.Unlock()

	n := wire.Netcheck{State: st.State, Broker: st.Broker, UDP: wire.UDPUnchecked, LAN: lanAddrs()}
	if !loggedIn {
		why := "not logged in"
		if st.State == wire.StateRevoked {
			why = "this device was removed from its mesh"
		}
		n.Notes = append(n.Notes, why+": no broker, so no STUN servers or relays to check; only this host's addresses are shown")
		return n, nil
	}
	if !st.BrokerConnected && eng != nil {
		n.Notes = append(n.Notes, "not connected to the broker: checking the STUN servers and relays of the last map")
	}
	if len(stunNames) == 0 {
		n.Notes = append(n.Notes, "the broker announces no STUN servers: the public mapping and NAT behaviour cannot be checked")
	}
	if len(relays) == 0 {
		n.Notes = append(n.Notes, "the broker lists no relays: peers without a direct path cannot be reached")
	}
	n.PortMapping = st.PortMapping
	switch {
	case n.PortMapping != nil:
	case d.cfg.NoPortMapping:
		n.Notes = append(n.Notes, "port mapping is off (--no-port-mapping): the gateway is not asked to forward a port")
	case eng == nil:
		n.Notes = append(n.Notes, "the tunnel is down: no port mapping is kept on the gateway")
	default:
		n.Notes = append(n.Notes, "kernel WireGuard: weftd keeps no port mapping for its socket")
	}

	ctx, cancel := context.WithTimeout(ctx, wire.NetcheckTimeout)
	defer cancel()
	var wg sync.WaitGroup
	n.Relays = make([]wire.NetcheckRelay, len(relays))
	for i, r := range relays {
		n.Relays[i].Name = r.Name
		if r.UDP != "" {
			wg.Go(func() { n.Relays[i].UDP = probeRelay(ctx, r, false) })
		}
		if r.TLS != "" {
			wg.Go(func() { n.Relays[i].TLS = probeRelay(ctx, r, true) })
		}
	}
	stunAsked, stunAnswered := 0, 0
	if len(stunNames) > 0 {
		var note string
		stunAsked, stunAnswered, note = d.netcheckSTUN(ctx, &n, eng, stunNames)
		if note != "" {
			n.Notes = append(n.Notes, note)
		}
	}
	wg.Wait()
	n.UDP = udpVerdict(stunAsked, stunAnswered, n.Relays)
	n.PreferredRelay = preferredRelay(n.Relays)
	return n, nil
}

// netcheckSTUN asks the STUN servers names for this device's public mapping and fills
// n's STUN, socket, port and mapping fields. It reports how many servers it asked and
// how many answered, and a note when it could not use WireGuard's own socket.
func (d *Daemon) netcheckSTUN(ctx context.Context, n *wire.Netcheck, eng Engine, names []string) (asked, answered int, note string) {
	servers, index := resolveSTUN(names)
	n.STUN = make([]wire.NetcheckSTUN, len(names))
	for i, name := range names {
		n.STUN[i].Server = name
		if index[i] < 0 {
			n.STUN[i].Error = "cannot resolve the server's name"
		}
	}
	if len(servers) == 0 {
		return 0, 0, ""
	}
	var mapped []netip.AddrPort
	tr, ok := eng.(traversal)
	if ok {
		n.Socket, n.LocalPort = wire.SocketWireGuard, eng.ListenPort()
		// Errors say only that nobody answered; the answers tell that per server.
		mapped, _ = tr.STUN(ctx, servers)
	} else {
		switch {
		case eng == nil:
			note = "the tunnel is down: STUN ran from a temporary socket, so the mapping is the NAT's behaviour, not WireGuard's own"
		default:
			note = "kernel WireGuard: weftd cannot send from its socket, so STUN ran from a temporary one"
		}
		n.Socket = wire.SocketProbe
		var err error
		if mapped, n.LocalPort, err = stunProbe(ctx, servers); err != nil {
			return 0, 0, fmt.Sprintf("%s; but it failed: %v", note, err)
		}
	}
	for i := range names {
		j := index[i]
		if j < 0 {
			continue
		}
		asked++
		if j < len(mapped) && mapped[j].IsValid() {
			n.STUN[i].Mapped = mapped[j]
			answered++
		} else {
			n.STUN[i].Error = fmt.Sprintf("no answer within %s", wire.NetcheckTimeout)
		}
	}
	var got []netip.AddrPort
	for _, s := range n.STUN {
		got = append(got, s.Mapped)
	}
	n.Mapping, n.PortPreserved = classifyMapping(got, n.LAN, n.LocalPort)
	return asked, answered, note
}

// resolveSTUN resolves STUN server names (HOST:PORT) to addresses. index[i] is the
// position of names[i]'s address in servers, or -1 when it did not resolve.
func resolveSTUN(names []string) (servers []netip.AddrPort, index []int) {
	index = make([]int, len(names))
	for i, n := range names {
		index[i] = -1
		ap, err := netip.ParseAddrPort(n)
		if err != nil {
			ua, rerr := net.ResolveUDPAddr("udp", n)
			if rerr != nil {
				continue
			}
			ap = ua.AddrPort()
		}
		index[i] = len(servers)
		servers = append(servers, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}
	return servers, index
}

// lanAddrs are this host's addresses a peer on one of its networks may reach it at.
func lanAddrs() []netip.Addr {
	out := []netip.Addr{}
	for _, ep := range mesh.LocalEndpoints(0, meshRange) {
		out = append(out, ep.Addr())
	}
	return out
}
