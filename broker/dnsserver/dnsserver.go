// Package dnsserver is the broker's authoritative DNS server for DEVICE.ACCOUNT.ZONE names.
//
// Answers are computed from the Resolver on every query and never cached here, so a new,
// renamed or removed device shows on the very next query; only downstream resolvers cache,
// for the short TTLs set in Config. The server is authoritative only: it never recurses,
// and it refuses names outside its zone.
package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Resolver answers for names under the zone; the broker implements it from its store.
// Methods are called concurrently, once per query, with a context that ends when the
// answer is no longer wanted. Labels are passed lower-cased and are valid weft names
// (lower-case a-z, 0-9 and '-'); the server answers NXDOMAIN for anything else without
// asking.
type Resolver interface {
	// LookupDevice returns the mesh address of device DEVICE in account ACCOUNT (labels as
	// in DEVICE.ACCOUNT.ZONE). ok is false when either does not exist; an error means the
	// answer is unknown and the query gets SERVFAIL.
	LookupDevice(ctx context.Context, account, device string) (addr netip.Addr, ok bool, err error)
	// AccountExists reports whether ACCOUNT exists, so that ACCOUNT.ZONE answers NODATA
	// rather than NXDOMAIN.
	AccountExists(ctx context.Context, account string) (bool, error)
}

// Config describes the zone. Only Zone, NSAddrs and Resolver are required.
type Config struct {
	Zone string // e.g. "weft.example.com"; a trailing dot is optional

	// NSNames are the apex NS records; default "ns1.<Zone>". Names inside the zone need
	// NSAddrs, served as their A/AAAA records, since that is how resolvers find them.
	NSNames []string
	NSAddrs []netip.Addr // the broker's public addresses

	// Mbox is the SOA responsible mailbox in DNS form; default "hostmaster.<Zone>".
	Mbox string

	TTL         time.Duration // of device records; default 60 s, kept short so changes show quickly
	NegativeTTL time.Duration // SOA TTL and MINIMUM, how long NXDOMAIN/NODATA is cached; default 30 s

	MaxTCPConns int // open TCP connections at once; default 128, more are closed at once
	MaxInFlight int // queries being answered at once; default 256, more are dropped

	Resolver Resolver
	Logger   *slog.Logger // default: discard
}

// Defaults and fixed parameters.
const (
	defaultTTL         = 60 * time.Second
	defaultNegativeTTL = 30 * time.Second
	defaultMaxTCPConns = 128
	defaultMaxInFlight = 256

	// infraTTL is the TTL of the NS records and their addresses: they change only when
	// the parent's delegation changes, which takes at least as long.
	infraTTL = 3600

	// SOA timers matter only to secondaries, which this server does not feed (zone
	// transfers are refused), but they must be sane for zone checkers.
	soaRefresh = 3600
	soaRetry   = 600
	soaExpire  = 14 * 24 * 3600

	// lookupTimeout bounds one Resolver call, so a stuck store gives SERVFAIL, not silence.
	lookupTimeout = 2 * time.Second

	maxTTL = time.Duration(1<<31-1) * time.Second // RFC 2181 §8
)

// Server answers DNS queries for one zone. Its methods are safe for concurrent use, and
// Serve may run on several sets of sockets at once.
type Server struct {
	zone       string   // lower-case FQDN, "weft.example.com."
	zoneLabels int      // labels in zone
	nsNames    []string // lower-case FQDNs
	mbox       string
	glue       map[string][]netip.Addr // in-zone NS name (lower-case FQDN) → addresses
	ttl        uint32
	negTTL     uint32
	maxTCP     int
	inflight   chan struct{} // a token per query being answered by Serve
	resolver   Resolver
	log        *slog.Logger
	now        func() time.Time
}

// New checks cfg and returns a server for its zone.
func New(cfg Config) (*Server, error) {
	zone, err := fqdn(cfg.Zone)
	if err != nil {
		return nil, fmt.Errorf("dns zone: %w", err)
	}
	if zone == "." {
		return nil, errors.New("dns zone: the root zone cannot be served")
	}
	if cfg.Resolver == nil {
		return nil, errors.New("dns server: no resolver")
	}
	s := &Server{
		zone:       zone,
		zoneLabels: dns.CountLabel(zone),
		glue:       make(map[string][]netip.Addr),
		resolver:   cfg.Resolver,
		log:        cfg.Logger,
		now:        time.Now,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.ttl, err = ttlSeconds("TTL", cfg.TTL, defaultTTL); err != nil {
		return nil, err
	}
	if s.negTTL, err = ttlSeconds("negative TTL", cfg.NegativeTTL, defaultNegativeTTL); err != nil {
		return nil, err
	}

	addrs := make([]netip.Addr, 0, len(cfg.NSAddrs))
	for _, a := range cfg.NSAddrs {
		a = a.Unmap()
		if !a.IsValid() || a.IsUnspecified() {
			return nil, fmt.Errorf("dns NS address %q: not a usable address", a)
		}
		addrs = append(addrs, a)
	}
	names := cfg.NSNames
	if len(names) == 0 {
		names = []string{"ns1." + zone}
	}
	for _, n := range names {
		name, err := fqdn(n)
		if err != nil {
			return nil, fmt.Errorf("dns NS name: %w", err)
		}
		if name == zone {
			return nil, fmt.Errorf("dns NS name %q: is the zone apex itself; use a name under it or outside it", n)
		}
		if dns.IsSubDomain(zone, name) {
			if len(addrs) == 0 {
				return nil, fmt.Errorf("dns NS name %q: is inside the zone, so it needs NS addresses (the broker's public IPs)", n)
			}
			s.glue[name] = addrs
		}
		s.nsNames = append(s.nsNames, name)
	}

	s.mbox = "hostmaster." + zone
	if cfg.Mbox != "" {
		if s.mbox, err = fqdn(cfg.Mbox); err != nil {
			return nil, fmt.Errorf("dns SOA mailbox: %w", err)
		}
	}

	s.maxTCP = cfg.MaxTCPConns
	if s.maxTCP == 0 {
		s.maxTCP = defaultMaxTCPConns
	}
	maxInFlight := cfg.MaxInFlight
	if maxInFlight == 0 {
		maxInFlight = defaultMaxInFlight
	}
	if s.maxTCP < 0 || maxInFlight < 0 {
		return nil, errors.New("dns server: connection and query limits cannot be negative")
	}
	s.inflight = make(chan struct{}, maxInFlight)
	return s, nil
}

// fqdn checks a domain name and returns it lower-cased with its trailing dot.
func fqdn(name string) (string, error) {
	if name == "" {
		return "", errors.New("name is empty")
	}
	if _, ok := dns.IsDomainName(name); !ok {
		return "", fmt.Errorf("%q is not a valid domain name", name)
	}
	return strings.ToLower(dns.Fqdn(name)), nil
}

func ttlSeconds(what string, d, def time.Duration) (uint32, error) {
	if d == 0 {
		d = def
	}
	if d < time.Second || d > maxTTL {
		return 0, fmt.Errorf("dns %s %v: must be between 1s and %v", what, d, maxTTL)
	}
	return uint32(d / time.Second), nil
}
