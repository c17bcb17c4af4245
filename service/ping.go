package service

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/weftmesh/weft/wire"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

const (
	maxPingCount = 100
	pingTimeout  = time.Second
	pingInterval = 250 * time.Millisecond
	protoICMPv4  = 1
)

// Ping sends ICMP echo requests through the tunnel to a peer named by name, FQDN or
// mesh IP, and reports each reply's round-trip time and the path it took.
func (d *Daemon) Ping(ctx context.Context, req wire.PingRequest) (wire.PingResult, error) {
	count := req.Count
	if count == 0 {
		count = 1
	}
	if count < 0 || count > maxPingCount {
		return wire.PingResult{}, errorf(http.StatusBadRequest, "count must be between 1 and %d", maxPingCount)
	}
	if strings.TrimSpace(req.Peer) == "" {
		return wire.PingResult{}, errorf(http.StatusBadRequest, "no peer given")
	}
	d.mu.Lock()
	peer, found := d.peers.Find(req.Peer)
	up := d.engine != nil
	d.mu.Unlock()
	if !found {
		return wire.PingResult{}, errorf(http.StatusNotFound, "no peer named %s", req.Peer)
	}
	if !up {
		return wire.PingResult{}, errorf(http.StatusConflict, "the tunnel is down: run weft up")
	}
	conn, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return wire.PingResult{}, fmt.Errorf("open ICMP socket: %w", err)
	}
	defer conn.Close()
	p := pinger{conn: conn, id: rand.IntN(1 << 16)}

	res := wire.PingResult{Peer: peer.Name, Address: peer.Address, Replies: []wire.PingReply{}}
	for seq := 1; seq <= count; seq++ {
		if seq > 1 {
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(pingInterval):
			}
		}
		reply := wire.PingReply{Seq: seq}
		rtt, err := p.echo(peer.Address, seq)
		if err != nil {
			reply.Error = err.Error()
		} else {
			reply.RTT, reply.Path = rtt, d.pathTo(peer.PublicKey)
		}
		res.Replies = append(res.Replies, reply)
	}
	return res, nil
}

// pathTo describes how packets to the peer with key travel now.
func (d *Daemon) pathTo(key wire.Key) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.engine == nil {
		return "tunnel down"
	}
	stats, err := d.engine.Stats()
	if err != nil {
		return "unknown"
	}
	st := stats[key]
	switch {
	case st.Path != "" && st.PathAddr.IsValid():
		return st.Path + " " + st.PathAddr.String()
	case st.Path != "":
		return st.Path // a relay path names its relay
	case st.Endpoint.IsValid(): // kernel WireGuard: no path selection, one endpoint
		return "direct " + st.Endpoint.String()
	}
	return "direct (endpoint not known yet)"
}

// pinger sends echo requests with one identifier and matches the replies to them.
type pinger struct {
	conn *icmp.PacketConn
	id   int
}

// echo sends one request and waits up to pingTimeout for its reply. The raw socket sees
// every ICMP packet to this host, so anything not answering this request is skipped.
func (p *pinger) echo(dst netip.Addr, seq int) (time.Duration, error) {
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: p.id, Seq: seq, Data: []byte("weft ping")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if err := p.conn.SetReadDeadline(start.Add(pingTimeout)); err != nil {
		return 0, err
	}
	if _, err := p.conn.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return 0, fmt.Errorf("send: %w", err)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := p.conn.ReadFrom(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, fmt.Errorf("no reply within %s", pingTimeout)
		}
		if err != nil {
			return 0, fmt.Errorf("receive: %w", err)
		}
		rtt := time.Since(start)
		ipa, ok := from.(*net.IPAddr)
		if !ok {
			continue
		}
		if src, ok := netip.AddrFromSlice(ipa.IP); !ok || src.Unmap() != dst {
			continue
		}
		m, err := icmp.ParseMessage(protoICMPv4, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == p.id && e.Seq == seq {
			return rtt, nil
		}
	}
}
