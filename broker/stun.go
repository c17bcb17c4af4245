package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/pion/stun/v3"
)

// STUN requests per source (an IPv4 address, or an IPv6 /64): a burst of stunBurst,
// then one every stunRefill. A device asks two servers every few seconds at most, and a
// household or a CGNAT shares one address; a flood of spoofed sources gets at most this
// many small replies per victim.
const (
	stunBurst  = 32
	stunRefill = 50 * time.Millisecond
)

// magicCookie is the fixed value that marks an RFC 5389 message (bytes 4–7).
const magicCookie = 0x2112A442

// stunServer answers RFC 5389 binding requests with the address they came from. It
// keeps no state beyond the rate limit, so one serves every socket.
type stunServer struct {
	limiter *limiter
}

func newSTUNServer(now func() time.Time) *stunServer {
	return &stunServer{limiter: newLimiter(stunBurst, stunRefill, now)}
}

// reply returns the response to pkt, which came from src, or nil when pkt is not a
// well-formed binding request or src is over its rate: anything else gets no answer,
// like WireGuard. The response is at most 24 bytes longer than the request (an IPv6
// XOR-MAPPED-ADDRESS against a bare 20-byte request), so it amplifies little.
func (s *stunServer) reply(pkt []byte, src netip.AddrPort) []byte {
	tx, fingerprint, ok := parseBindingRequest(pkt)
	if !ok {
		return nil
	}
	if ok, _ := s.limiter.Allow(stunSource(src.Addr())); !ok {
		return nil
	}
	setters := []stun.Setter{stun.NewTransactionIDSetter(tx), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: src.Addr().Unmap().AsSlice(), Port: int(src.Port())}}
	if fingerprint {
		// The client asked for one by sending one (RFC 5389 section 7.3.1).
		setters = append(setters, stun.Fingerprint)
	}
	m, err := stun.Build(setters...)
	if err != nil {
		return nil
	}
	return m.Raw
}

// parseBindingRequest checks that pkt is exactly one RFC 5389 binding request (magic
// cookie, a length that matches, well-formed attributes, a correct FINGERPRINT if it has
// one, last) and returns its transaction ID and whether it carried a FINGERPRINT.
func parseBindingRequest(pkt []byte) (tx [stun.TransactionIDSize]byte, fingerprint, ok bool) {
	// Cheap checks first: most stray packets fail here without an allocation.
	if len(pkt) < 20 || binary.BigEndian.Uint16(pkt[0:2]) != 0x0001 ||
		binary.BigEndian.Uint32(pkt[4:8]) != magicCookie {
		return tx, false, false
	}
	size := int(binary.BigEndian.Uint16(pkt[2:4]))
	if size%4 != 0 || len(pkt) != 20+size {
		return tx, false, false
	}
	m := &stun.Message{Raw: pkt}
	if err := m.Decode(); err != nil || m.Type != stun.BindingRequest {
		return tx, false, false
	}
	if n := len(m.Attributes); n > 0 && m.Contains(stun.AttrFingerprint) {
		if m.Attributes[n-1].Type != stun.AttrFingerprint || stun.Fingerprint.Check(m) != nil {
			return tx, false, false
		}
		fingerprint = true
	}
	return m.TransactionID, fingerprint, true
}

// stunSource is the rate-limit key of a source address: IPv6 hosts get a /64 each.
func stunSource(a netip.Addr) string {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// startSTUN listens on every cfg.STUNListen address and answers binding requests until
// ctx ends. It records the addresses to announce in the map.
func (b *Broker) startSTUN(ctx context.Context) (func() error, error) {
	if len(b.cfg.STUNListen) == 0 {
		return nil, nil
	}
	var conns []*net.UDPConn
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	var announce []string
	for _, l := range b.cfg.STUNListen {
		c, err := listenUDP(l)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("STUN: %w", err)
		}
		conns = append(conns, c)
		local := c.LocalAddr().(*net.UDPAddr).AddrPort()
		addrs := b.publicAddrs(l)
		if len(addrs) == 0 {
			closeAll()
			return nil, fmt.Errorf("STUN: cannot tell the broker's public address to announce for %s: give --public-addr", l)
		}
		for _, a := range addrs {
			announce = append(announce, net.JoinHostPort(a.String(), strconv.Itoa(int(local.Port()))))
		}
		b.log.Info("STUN listening", "addr", local.String())
	}
	b.stunAddrs = announce
	srv := newSTUNServer(time.Now)
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv.serve(c)
		}()
	}
	stopped := make(chan struct{})
	go func() {
		<-ctx.Done()
		closeAll() // ends every serve loop's read
		wg.Wait()
		close(stopped)
	}()
	return func() error { <-stopped; return nil }, nil
}

// serve answers binding requests on c until c is closed.
func (s *stunServer) serve(c *net.UDPConn) {
	buf := make([]byte, 1500)
	for {
		n, src, err := c.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// A transient error (an ICMP unreachable reported on the socket, say):
			// nothing was read, so nothing to answer.
			continue
		}
		if resp := s.reply(buf[:n], src); resp != nil {
			_, _ = c.WriteToUDPAddrPort(resp, src)
		}
	}
}

// listenUDP binds hostport for UDP.
func listenUDP(hostport string) (*net.UDPConn, error) {
	a, err := net.ResolveUDPAddr("udp", hostport)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", hostport, err)
	}
	c, err := net.ListenUDP("udp", a)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", hostport, err)
	}
	return c, nil
}
