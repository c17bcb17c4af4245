// Package portmap asks the default gateway to forward a public UDP port to a local one,
// with PCP (RFC 6887) or else NAT-PMP (RFC 6886), keeps the mapping alive and deletes it
// when done, so peers can reach the port even behind a NAT that maps per destination.
package portmap

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Protocols a mapping is made with.
const (
	PCP    = "PCP"
	NATPMP = "NAT-PMP"
)

const (
	// ServerPort is where gateways listen for both protocols; AnnouncePort is where they
	// multicast (to 224.0.0.1) that they restarted or got a new external address.
	ServerPort   = 5351
	AnnouncePort = 5350
	// DefaultLifetime is the lifetime asked for (RFC 6886 recommends two hours); the
	// mapping is renewed at half of what the gateway grants.
	DefaultLifetime = 2 * time.Hour
	// DefaultProbeTimeout bounds the first exchange with a gateway: one that speaks
	// neither protocol (and does not refuse the port outright) costs this much, once.
	DefaultProbeTimeout = 1500 * time.Millisecond
	// DefaultRetry is how long after a failed attempt the gateway is asked again, unless
	// the network changes first (Refresh).
	DefaultRetry = 2 * time.Minute
	// firstResend is the first retransmission interval; it doubles (RFC 6886 §3.1).
	firstResend = 250 * time.Millisecond
	// requestTimeout bounds a renewal's exchange; releaseTimeout the deletion at the end.
	requestTimeout = 2 * time.Second
	releaseTimeout = time.Second
	// kickGap is the least time between two attempts that Refresh or announcements start.
	kickGap = time.Second
)

// Config configures a Mapper.
type Config struct {
	// Port is the local UDP port to map (WireGuard's); the mapping is for it on the local
	// address the gateway is reached from. The requests go from a socket of their own.
	Port int
	// Lifetime is the lifetime asked for; 0 means DefaultLifetime.
	Lifetime time.Duration
	Logger   *slog.Logger
	// Gateway finds the gateway to ask; nil means DefaultGateway.
	Gateway func() (netip.Addr, error)
	// ServerPort is the gateway's port; 0 means ServerPort. Tests use another.
	ServerPort int
	// Announce is the local UDP address on which announcements are awaited: "" means
	// AnnouncePort on every address (multicast to 224.0.0.1 included); "-" none.
	Announce string
	// ProbeTimeout and Retry: 0 means DefaultProbeTimeout and DefaultRetry.
	ProbeTimeout time.Duration
	Retry        time.Duration
}

// Mapping is a port mapping the gateway granted.
type Mapping struct {
	Protocol string         // PCP or NATPMP
	Gateway  netip.Addr     // who granted it
	Internal netip.AddrPort // this host's address towards the gateway, and the mapped port
	External netip.AddrPort // where peers send to reach Internal
	Lifetime time.Duration  // as granted at the last renewal
	Renewed  time.Time      // when it was last granted
}

// Status is what a Mapper has now.
type Status struct {
	Mapping        // zero while there is no mapping
	Tried   bool   // at least one attempt has finished
	Err     string // why there is no mapping, after a failed attempt
}

// Mapper keeps one port mapping on the default gateway. Run does the work; the other
// methods are safe to call from any goroutine.
type Mapper struct {
	cfg     Config
	log     *slog.Logger
	kick    chan struct{}
	changed chan struct{}

	mu      sync.Mutex // guards status and gateway
	status  Status
	gateway netip.Addr // the gateway last asked, whose announcements count
}

// New returns a Mapper for cfg.Port; Run starts it.
func New(cfg Config) (*Mapper, error) {
	if cfg.Port < 1 || cfg.Port > 65535 {
		return nil, fmt.Errorf("portmap: port %d is out of range 1-65535", cfg.Port)
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = DefaultLifetime
	}
	if cfg.Gateway == nil {
		cfg.Gateway = DefaultGateway
	}
	if cfg.ServerPort == 0 {
		cfg.ServerPort = ServerPort
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = DefaultProbeTimeout
	}
	if cfg.Retry <= 0 {
		cfg.Retry = DefaultRetry
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Mapper{cfg: cfg, log: log, kick: make(chan struct{}, 1), changed: make(chan struct{}, 1)}, nil
}

// Status reports the current mapping, or why there is none.
func (m *Mapper) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status
}

// Changed delivers a signal (coalesced) whenever Status changes.
func (m *Mapper) Changed() <-chan struct{} { return m.changed }

// Refresh says the network may have changed (new addresses, routes or public mapping):
// the gateway is looked up again and the mapping renewed or made anew at once.
func (m *Mapper) Refresh() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *Mapper) publish(s Status) {
	m.mu.Lock()
	same := s == m.status
	m.status = s
	m.mu.Unlock()
	if !same {
		select {
		case m.changed <- struct{}{}:
		default:
		}
	}
}

// Run keeps the mapping until ctx ends, then deletes it (waiting a second at most).
func (m *Mapper) Run(ctx context.Context) {
	stopAnnounce := m.listenAnnounce(ctx)
	defer stopAnnounce()
	var s *session
	defer func() {
		if s != nil {
			rctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
			s.release(rctx, true)
			cancel()
			s.close()
		}
		m.publish(Status{})
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-m.kick:
			if wait := kickGap - time.Since(last); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
		last = time.Now()
		var next time.Duration
		s, next = m.step(ctx, s)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

// step makes or renews the mapping and returns the session to keep and when to come back.
func (m *Mapper) step(ctx context.Context, s *session) (*session, time.Duration) {
	fail := func(err error) (*session, time.Duration) {
		m.log.Debug("no port mapping", "err", err)
		m.publish(Status{Tried: true, Err: err.Error()})
		return s, m.cfg.Retry
	}
	gw, err := m.cfg.Gateway()
	m.mu.Lock()
	m.gateway = gw
	m.mu.Unlock()
	if err != nil {
		if s != nil {
			s.release(ctx, false)
			s.close()
			s = nil
		}
		return fail(err)
	}
	local, err := localAddr(gw, m.cfg.ServerPort)
	if err != nil {
		return fail(err)
	}
	if s != nil && (s.gw != gw || s.local != local) {
		// Moved: the old gateway is likely out of reach; tell it once, without waiting.
		m.log.Info("port mapping: the gateway or local address changed", "gateway", gw, "local", local)
		s.release(ctx, false)
		s.close()
		s = nil
	}
	if s == nil {
		if s, err = m.newSession(gw); err != nil {
			return fail(err)
		}
	}
	now := time.Now()
	var mp Mapping
	if s.proto == "" {
		mp, err = s.probe(ctx, m.cfg.ProbeTimeout)
	} else {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		mp, err = s.renew(rctx)
		cancel()
	}
	if ctx.Err() != nil {
		return s, m.cfg.Retry // shutting down: Run releases the mapping
	}
	if err != nil {
		if errors.Is(err, errVersion) {
			s.proto = "" // the gateway changed its mind: probe again
		}
		s.failures++
		if s.cur.External.IsValid() && now.Before(s.expires) {
			// Keep what we have until it expires, retrying at a doubling interval.
			retry := min(firstResend<<min(s.failures, 12), s.expires.Sub(now)/2)
			m.log.Debug("port mapping: renewal failed", "err", err, "retry", retry)
			return s, max(retry, time.Second)
		}
		if s.cur.External.IsValid() {
			m.log.Info("port mapping lost", "external", s.cur.External, "err", err)
		}
		s.cur, s.proto = Mapping{}, ""
		return fail(err)
	}
	if s.cur.External != mp.External || s.cur.Protocol != mp.Protocol {
		m.log.Info("port mapping", "protocol", mp.Protocol, "gateway", gw, "external", mp.External,
			"internal", mp.Internal, "lifetime", mp.Lifetime)
	}
	s.failures = 0
	s.cur, s.expires = mp, mp.Renewed.Add(mp.Lifetime)
	m.publish(Status{Mapping: mp, Tried: true})
	return s, max(mp.Lifetime/2, time.Second)
}

func (m *Mapper) newSession(gw netip.Addr) (*session, error) {
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw, uint16(m.cfg.ServerPort))))
	if err != nil {
		return nil, fmt.Errorf("portmap: socket towards gateway %s: %w", gw, err)
	}
	s := &session{gw: gw, conn: c, local: c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(),
		port: uint16(m.cfg.Port), lifetime: uint32(m.cfg.Lifetime / time.Second), log: m.log}
	if _, err := rand.Read(s.nonce[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("portmap: nonce: %w", err)
	}
	return s, nil
}

// localAddr is the local address packets to gw leave from (no packet is sent).
func localAddr(gw netip.Addr, port int) (netip.Addr, error) {
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw, uint16(port))))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("portmap: no route to gateway %s: %w", gw, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// listenAnnounce waits for the gateway's announcements (a restart, a new external
// address) and renews at once when one comes. It is best effort: without the socket,
// renewals and network changes still find out, later.
func (m *Mapper) listenAnnounce(ctx context.Context) (stop func()) {
	if m.cfg.Announce == "-" {
		return func() {}
	}
	var c *net.UDPConn
	var err error
	if m.cfg.Announce == "" {
		// Every host is in 224.0.0.1; binding the group's port receives what is sent to it.
		c, err = net.ListenMulticastUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4allsys, Port: AnnouncePort})
	} else {
		var ua *net.UDPAddr
		if ua, err = net.ResolveUDPAddr("udp4", m.cfg.Announce); err == nil {
			c, err = net.ListenUDP("udp4", ua)
		}
	}
	if err != nil {
		m.log.Debug("port mapping: not listening for gateway announcements", "err", err)
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, pcpMaxLen+4)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if m.isAnnouncement(from, buf[:n]) {
				m.log.Debug("port mapping: the gateway announced a change", "from", from)
				m.Refresh()
			}
		}
	}()
	return func() {
		c.Close()
		<-done
	}
}

// isAnnouncement reports whether pkt from is the current gateway's announcement: a PCP
// ANNOUNCE response or a NAT-PMP external address response.
func (m *Mapper) isAnnouncement(from netip.AddrPort, pkt []byte) bool {
	m.mu.Lock()
	gw := m.gateway
	m.mu.Unlock()
	if !gw.IsValid() || from.Addr().Unmap() != gw || int(from.Port()) != m.cfg.ServerPort || len(pkt) == 0 {
		return false
	}
	switch pkt[0] {
	case pcpVersion:
		r, err := parsePCP(pkt)
		return err == nil && r.op == pcpOpAnnounce
	case pmpVersion:
		r, err := parsePMP(pkt)
		return err == nil && r.op == pmpOpAddr
	}
	return false
}
