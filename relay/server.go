package relay

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/relayproto"
	"github.com/weftmesh/weft/wire"
)

// Defaults for Config's zero values.
const (
	DefaultRate          = 100_000_000 // bytes/s per client
	DefaultMaxClients    = 4096
	DefaultQueueLen      = 256     // frames waiting for one TLS client
	DefaultQueueBytes    = 1 << 20 // bytes waiting for one TLS client
	DefaultLease         = 60 * time.Second
	DefaultStatsInterval = time.Minute
	minBurst             = 64 << 10
)

// Config describes a relay.
type Config struct {
	PrivateKey wire.Key // the relay's static X25519 key
	// Rate and Burst bound each client's forwarded bytes with a token bucket; 0 means
	// DefaultRate and a burst of Rate/8 (at least 64 KiB).
	Rate  int64
	Burst int64
	// MaxClients bounds authenticated clients over both transports; 0 means DefaultMaxClients.
	MaxClients int
	// QueueLen and QueueBytes bound what waits for one TLS client; 0 means the defaults.
	QueueLen   int
	QueueBytes int
	// Lease is how long a UDP binding lives without an authenticated frame, and how long
	// a TLS client may stay silent; 0 means DefaultLease.
	Lease time.Duration
	// StatsInterval is how often Run logs the counters; 0 means DefaultStatsInterval.
	StatsInterval time.Duration
	Logger        *slog.Logger
}

// Server forwards frames between authenticated clients. Start Run, then serve any
// number of UDP sockets (ServeUDP) and TLS listeners (ServeTLS, or mount the Server as
// an http.Handler on an HTTPS server).
type Server struct {
	priv, pub wire.Key
	cfg       Config
	log       *slog.Logger
	start     time.Time // now() counts from here on the monotonic clock

	cookies *cookieJar
	hellos  *ipLimiter
	pending chan struct{} // a slot per TLS connection still in its handshake
	stats   counters

	mu sync.RWMutex
	// byKey holds every authenticated client; byAddr the UDP ones by their bound
	// address. Both guarded by mu; a client, once registered, never changes except for
	// its atomics, so readers may keep using it after unlocking.
	byKey  map[wire.Key]*client
	byAddr map[bindKey]*client
}

// bindKey is a UDP binding: the socket a client is bound on and its address.
type bindKey struct {
	l    *udpListener
	addr netip.AddrPort
}

// client is one authenticated session. Exactly one of udp and tcp is set.
type client struct {
	key   wire.Key
	token relayproto.Token
	udp   *udpListener
	addr  netip.AddrPort // UDP binding, or the TLS client's remote address
	tcp   *tcpClient

	lastSeen atomic.Int64 // now() of the last authenticated frame
	bucket   bucket
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.PrivateKey.IsZero() {
		return nil, errors.New("relay: no private key")
	}
	if cfg.Rate < 0 || cfg.Burst < 0 || cfg.MaxClients < 0 || cfg.QueueLen < 0 || cfg.QueueBytes < 0 || cfg.Lease < 0 {
		return nil, errors.New("relay: rate, burst, max clients, queue bounds and lease must not be negative")
	}
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Burst == 0 {
		cfg.Burst = max(cfg.Rate/8, minBurst)
	}
	if cfg.MaxClients == 0 {
		cfg.MaxClients = DefaultMaxClients
	}
	if cfg.QueueLen == 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.QueueBytes == 0 {
		cfg.QueueBytes = DefaultQueueBytes
	}
	if cfg.Lease == 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Lease > time.Duration(1<<16-1)*time.Second {
		return nil, errors.New("relay: lease must be under 18 hours")
	}
	if cfg.StatsInterval == 0 {
		cfg.StatsInterval = DefaultStatsInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	jar, err := newCookieJar()
	if err != nil {
		return nil, err
	}
	return &Server{
		priv:    cfg.PrivateKey,
		pub:     cfg.PrivateKey.Public(),
		cfg:     cfg,
		log:     cfg.Logger,
		start:   time.Now(),
		cookies: jar,
		hellos:  newIPLimiter(helloBurst, helloRate),
		pending: make(chan struct{}, maxPendingTLS),
		byKey:   make(map[wire.Key]*client),
		byAddr:  make(map[bindKey]*client),
	}, nil
}

// PublicKey is the key clients verify the relay by.
func (s *Server) PublicKey() wire.Key { return s.pub }

// now is the monotonic time since start, in nanoseconds.
func (s *Server) now() int64 { return int64(time.Since(s.start)) }

// Run expires idle UDP bindings and logs the counters until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	sweep := time.NewTicker(max(s.cfg.Lease/8, 100*time.Millisecond))
	defer sweep.Stop()
	report := time.NewTicker(s.cfg.StatsInterval)
	defer report.Stop()
	for {
		select {
		case <-ctx.Done():
			s.closeAll()
			s.logStats()
			return nil
		case <-sweep.C:
			s.expire(s.now())
			s.hellos.sweep(s.now())
			s.cookies.sweep(time.Now())
		case <-report.C:
			s.logStats()
		}
	}
}

// expire drops UDP bindings that saw no authenticated frame for a lease. TLS clients
// expire by their read deadline instead.
func (s *Server) expire(now int64) {
	lease := int64(s.cfg.Lease)
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, c := range s.byAddr {
		if now-c.lastSeen.Load() > lease {
			delete(s.byAddr, k)
			if s.byKey[c.key] == c {
				delete(s.byKey, c.key)
			}
			s.log.Debug("relay: UDP binding expired", "key", c.key, "addr", c.addr)
		}
	}
}

// errFull: the relay has its maximum number of clients.
var errFull = errors.New("relay is full")

// newToken makes a session token.
func newToken() (relayproto.Token, error) {
	var t relayproto.Token
	if _, err := rand.Read(t[:]); err != nil {
		return t, fmt.Errorf("generate session token: %w", err)
	}
	return t, nil
}

// register adds c, replacing any earlier session of the same key (the newest proof of
// possession wins: that is how a client that moved takes its key back) and any other
// client bound to the same UDP address.
func (s *Server) register(c *client) error {
	c.lastSeen.Store(s.now())
	c.bucket.init(s.cfg.Rate, s.cfg.Burst, s.now())
	var evicted []*client
	s.mu.Lock()
	old := s.byKey[c.key]
	if old == nil && len(s.byKey) >= s.cfg.MaxClients {
		s.mu.Unlock()
		return errFull
	}
	if old != nil {
		s.removeLocked(old)
		evicted = append(evicted, old)
	}
	if c.udp != nil {
		bk := bindKey{c.udp, c.addr}
		if other := s.byAddr[bk]; other != nil {
			s.removeLocked(other)
			evicted = append(evicted, other)
		}
		s.byAddr[bk] = c
	}
	s.byKey[c.key] = c
	s.mu.Unlock()
	for _, e := range evicted {
		if e.tcp != nil {
			e.tcp.close()
		}
	}
	return nil
}

func (s *Server) removeLocked(c *client) {
	if s.byKey[c.key] == c {
		delete(s.byKey, c.key)
	}
	if c.udp != nil {
		bk := bindKey{c.udp, c.addr}
		if s.byAddr[bk] == c {
			delete(s.byAddr, bk)
		}
	}
}

// remove drops c if it is still registered.
func (s *Server) remove(c *client) {
	s.mu.Lock()
	s.removeLocked(c)
	s.mu.Unlock()
}

// closeAll drops every client and closes the TLS ones.
func (s *Server) closeAll() {
	s.mu.Lock()
	var tcps []*tcpClient
	for _, c := range s.byKey {
		if c.tcp != nil {
			tcps = append(tcps, c.tcp)
		}
	}
	clear(s.byKey)
	clear(s.byAddr)
	s.mu.Unlock()
	for _, t := range tcps {
		t.close()
	}
}

// lookup returns the client registered for key, or nil.
func (s *Server) lookup(key wire.Key) *client {
	s.mu.RLock()
	c := s.byKey[key]
	s.mu.RUnlock()
	return c
}
