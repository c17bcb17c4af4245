package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/weftmesh/weft/mesh/relayclient"
	"github.com/weftmesh/weft/mesh/stun"
	"github.com/weftmesh/weft/wire"
)

const (
	// relayPingEvery is the probe connection's keepalive interval: short, so that its
	// first ping, whose round trip is the latency reported, leaves right after the
	// handshake.
	relayPingEvery = 10 * time.Millisecond
	// relayPollEvery is how often the probe looks for that ping's answer.
	relayPollEvery = 5 * time.Millisecond
	// stunResend is how often a temporary socket's unanswered STUN requests are resent.
	stunResend = 500 * time.Millisecond
)

// probeRelay connects to one of r's transports (TLS if tls, else UDP), completing the
// handshake in which the relay proves its key, and measures one ping, within ctx.
//
// It uses a throwaway key: the relay keeps one session per key, the newest winning, so a
// probe with this device's key would take the tunnel's own relay session away.
func probeRelay(ctx context.Context, r wire.RelayInfo, tls bool) *wire.RelayProbe {
	cfg := relayclient.Config{RelayKey: r.PublicKey, Keepalive: relayPingEvery}
	p := &wire.RelayProbe{Addr: r.UDP}
	if tls {
		cfg.URL, cfg.Proxy, p.Addr = "https://"+r.TLS, http.ProxyFromEnvironment, r.TLS
	} else {
		cfg.UDPAddr = r.UDP
	}
	key, err := wire.NewPrivateKey()
	if err != nil {
		p.Error = err.Error()
		return p
	}
	cfg.PrivateKey = key
	c, err := relayclient.Dial(ctx, cfg)
	if err != nil {
		p.Error = relayError(ctx, err)
		return p
	}
	defer c.Close()
	p.OK = true
	t := time.NewTicker(relayPollEvery)
	defer t.Stop()
	for {
		if rtt := c.Status().RTT; rtt > 0 {
			p.Latency = rtt
			return p
		}
		select {
		case <-ctx.Done():
			return p
		case <-t.C:
		}
	}
}

// relayError says in a few words why a relay probe failed.
func relayError(ctx context.Context, err error) string {
	switch {
	case errors.Is(err, relayclient.ErrRelayKey):
		return "something answered but could not prove the relay's key"
	case errors.Is(err, relayclient.ErrRelayFull):
		return "the relay is full"
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return fmt.Sprintf("no answer within %s", wire.NetcheckTimeout)
	}
	return err.Error()
}

// stunProbe asks servers for the public mapping of a temporary UDP socket, resending
// every stunResend, until each answered or ctx ends: for when WireGuard's own socket is
// not weftd's to send from. mapped[i] is servers[i]'s answer, invalid when none came;
// port is the socket's. It fails only when it cannot use the socket at all.
func stunProbe(ctx context.Context, servers []netip.AddrPort) (mapped []netip.AddrPort, port int, err error) {
	conn, err := net.ListenUDP("udp", nil)
	if err != nil {
		return nil, 0, fmt.Errorf("open a UDP socket: %w", err)
	}
	defer conn.Close()
	port = conn.LocalAddr().(*net.UDPAddr).Port
	txs := make([]stun.TxID, len(servers))
	reqs := make([][]byte, len(servers))
	for i := range servers {
		txs[i], reqs[i] = stun.Request()
	}
	mapped = make([]netip.AddrPort, len(servers))
	left := len(servers)
	buf := make([]byte, 1500)
	for left > 0 && ctx.Err() == nil {
		for i, s := range servers {
			if !mapped[i].IsValid() {
				// A failed send (no route, say) is what an unanswered one is here.
				_, _ = conn.WriteToUDPAddrPort(reqs[i], s)
			}
		}
		until := time.Now().Add(stunResend)
		if dl, ok := ctx.Deadline(); ok && dl.Before(until) {
			until = dl
		}
		conn.SetReadDeadline(until)
		for left > 0 {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return mapped, port, fmt.Errorf("read STUN answers: %w", err)
			}
			tx, m, err := stun.ParseResponse(buf[:n])
			if err != nil {
				continue
			}
			from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			for i := range servers {
				if txs[i] == tx && servers[i] == from && !mapped[i].IsValid() {
					mapped[i] = netip.AddrPortFrom(m.Addr().Unmap(), m.Port())
					left--
				}
			}
		}
	}
	return mapped, port, nil
}
