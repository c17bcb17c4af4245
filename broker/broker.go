// Package broker is weft-broker: the HTTPS control API devices register with and get
// their maps from, backed by SQLite, plus a local admin socket.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/broker/store"
	"github.com/weftmesh/weft/internal/dnsname"
	"github.com/weftmesh/weft/wire"
)

// DefaultDomain is the DNS zone device names live under unless Config.Domain says otherwise.
const DefaultDomain = "weft.internal"

// Config is what a broker is started with.
type Config struct {
	DataDir string // broker.db, broker.key, TLS material and admin.sock live here
	Listen  string // HOST:PORT of the HTTPS API
	Domain  string // DNS zone; "" means DefaultDomain

	// DNSListen is HOST:PORT for the authoritative DNS server (UDP and TCP); "" means none.
	DNSListen string
	// DNSAddrs are the broker's public addresses for the zone's NS glue; by default the
	// DNS listen address when it is a specific IP, else PublicAddrs, else the API's.
	DNSAddrs []netip.Addr

	// STUNListen are HOST:PORT addresses to answer STUN binding requests on (UDP); two
	// let devices tell endpoint-independent from endpoint-dependent NAT mapping. They are
	// announced in the map; a wildcard host is announced as PublicAddrs, or the API
	// listen address when that is a specific IP.
	STUNListen []string
	// PublicAddrs are the broker's public IP addresses, announced wherever a listen
	// address is a wildcard (behind a 1:1 NAT the listen address is not the public one).
	PublicAddrs []netip.Addr
	// RelayUDP and RelayTLS, if set, run a relay inside the broker on these HOST:PORT
	// addresses (the single-box default); every account's devices get it as a relay.
	RelayUDP, RelayTLS string

	// TLSCert and TLSKey name a certificate and key to serve. Without them the broker
	// makes its own CA in DataDir and a server certificate signed by it.
	TLSCert, TLSKey string
	// TLSSANs are extra names and addresses the generated certificate must cover.
	TLSSANs []string

	Logger *slog.Logger // nil means slog.Default()

	// Keepalive is how often an idle map stream gets an empty update; 0 means
	// wire.MapKeepalive.
	Keepalive time.Duration
	// StoreOptions tune the database (tests use a cheap password hash).
	StoreOptions store.Options
}

// Broker is a configured broker. New opens its state; Start serves it.
type Broker struct {
	cfg     Config
	log     *slog.Logger
	store   *store.Store
	hub     *Hub
	priv    wire.Key // the static key devices derive their auth MAC key with
	tls     *tls.Config
	nonces  *nonceStore
	limiter *limiter
	punches *limiter // per pair of devices: see punchInterval

	// writeMu serialises the store writes that change a map with their publication to
	// the hub, and map subscriptions with both, so every stream sees changes in commit
	// order and a full map is never older than the deltas that follow it.
	writeMu sync.Mutex

	// Set by Start.
	api, admin *http.Server
	apiLn      net.Listener
	stop       context.CancelFunc // ends every request context, map streams included
	stunAddrs  []string           // the STUN servers announced in every full map
	embedded   *wire.RelayInfo    // the relay served in-process, if any
	done       chan struct{}      // closed when Wait can return
	runErr     error              // why serving ended; read after done
}

// New validates cfg and opens the broker's state in cfg.DataDir, creating what is missing.
func New(ctx context.Context, cfg Config) (*Broker, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("no data directory given")
	}
	if cfg.Domain == "" {
		cfg.Domain = DefaultDomain
	}
	cfg.Domain = strings.TrimSuffix(strings.ToLower(cfg.Domain), ".")
	for _, l := range strings.Split(cfg.Domain, ".") {
		if err := dnsname.ValidLabel(l); err != nil {
			return nil, fmt.Errorf("domain %q: %w", cfg.Domain, err)
		}
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return nil, fmt.Errorf("listen address %q: %w", cfg.Listen, err)
	}
	for _, a := range append(slices.Clone(cfg.STUNListen), cfg.RelayUDP, cfg.RelayTLS) {
		if _, _, err := net.SplitHostPort(a); a != "" && err != nil {
			return nil, fmt.Errorf("listen address %q: %w", a, err)
		}
	}
	if cfg.RelayUDP == "" && cfg.RelayTLS != "" {
		return nil, errors.New("an embedded relay needs a UDP address (--relay-udp) besides the TLS one")
	}
	if cfg.Keepalive <= 0 {
		cfg.Keepalive = wire.MapKeepalive
	}
	b := &Broker{cfg: cfg, log: cfg.Logger, hub: NewHub(), nonces: newNonceStore(time.Now),
		limiter: newLimiter(passwordBurst, passwordRefill, time.Now),
		punches: newLimiter(1, punchInterval, time.Now)}
	if b.log == nil {
		b.log = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	var err error
	if b.priv, err = loadOrCreateKey(filepath.Join(cfg.DataDir, "broker.key")); err != nil {
		return nil, err
	}
	if b.tls, err = b.setupTLS(); err != nil {
		return nil, err
	}
	if b.store, err = store.Open(ctx, filepath.Join(cfg.DataDir, "broker.db"), cfg.StoreOptions); err != nil {
		return nil, err
	}
	return b, nil
}

// PublicKey is the broker's static public key, as /v1/info reports it.
func (b *Broker) PublicKey() wire.Key { return b.priv.Public() }

// Start listens on the HTTPS address and the admin socket and serves both until ctx
// ends; then Wait returns.
func (b *Broker) Start(ctx context.Context) error {
	adminLn, err := listenAdmin(b.adminPath())
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", b.cfg.Listen)
	if err != nil {
		adminLn.Close()
		return fmt.Errorf("listen on %s: %w", b.cfg.Listen, err)
	}
	b.apiLn = ln
	base, stop := context.WithCancel(context.WithoutCancel(ctx))
	b.stop = stop
	b.done = make(chan struct{})
	// UDP services beside the API; each start returns a wait for its end, nil if off.
	var waits []func() error
	waitAll := func() error {
		var first error
		for _, w := range waits {
			if err := w(); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	for _, start := range []func(context.Context) (func() error, error){b.startDNS, b.startSTUN, b.startRelay} {
		w, err := start(base)
		if err != nil {
			stop()
			ln.Close()
			adminLn.Close()
			waitAll()
			return err
		}
		if w != nil {
			waits = append(waits, w)
		}
	}
	b.api = &http.Server{
		Handler:           b.Handler(),
		TLSConfig:         b.tls,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelDebug),
	}
	b.admin = &http.Server{
		Handler:           b.adminHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return base },
		ConnContext:       withPeer,
	}
	errc := make(chan error, 2)
	go func() { errc <- b.api.Serve(tls.NewListener(ln, b.tls)) }()
	go func() { errc <- b.admin.Serve(adminLn) }()
	b.log.Info("broker listening", "addr", ln.Addr().String(), "admin", b.adminPath(),
		"domain", b.cfg.Domain, "public_key", b.PublicKey().String())
	go func() {
		defer close(b.done)
		select {
		case <-ctx.Done():
		case err := <-errc:
			b.runErr = fmt.Errorf("serve: %w", err)
		}
		// Ending the base context ends the map streams, which would otherwise hold
		// Shutdown until its deadline.
		stop()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.api.Shutdown(sctx)
		b.admin.Shutdown(sctx)
		os.Remove(b.adminPath())
		if err := waitAll(); err != nil && b.runErr == nil {
			b.runErr = err
		}
	}()
	return nil
}

// Addr is where the HTTPS API listens; valid after Start.
func (b *Broker) Addr() net.Addr { return b.apiLn.Addr() }

// Wait blocks until the broker started by Start has shut down, and says why if it
// was not because its context ended.
func (b *Broker) Wait() error {
	<-b.done
	return b.runErr
}

// Run is Start followed by Wait.
func (b *Broker) Run(ctx context.Context) error {
	if err := b.Start(ctx); err != nil {
		return err
	}
	return b.Wait()
}

// Close releases the broker's state; call it after Wait (or instead of Start).
func (b *Broker) Close() error { return b.store.Close() }

func (b *Broker) adminPath() string { return filepath.Join(b.cfg.DataDir, AdminSocket) }
