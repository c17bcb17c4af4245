// Package service is weftd: it keeps the device's identity and state, serves the local
// API, and ties the data plane (mesh) to the broker's map (mesh/control).
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/weftmesh/weft/ipc"
	"github.com/weftmesh/weft/mesh"
	"github.com/weftmesh/weft/mesh/control"
	"github.com/weftmesh/weft/mesh/portmap"
	"github.com/weftmesh/weft/platform"
	"github.com/weftmesh/weft/wire"
)

// connectedWithin is how recent a handshake must be for a peer to count as connected.
const connectedWithin = 3 * time.Minute

// Engine is the data plane the daemon drives; every mesh.Device implements it.
type Engine interface {
	SetPeers(peers []mesh.Peer) error // replaces the peer set; unchanged peers keep their sessions
	Stats() (map[wire.Key]mesh.PeerStats, error)
	ListenPort() int
	InterfaceName() string
	Kind() string // which WireGuard runs the tunnel: mesh.KindKernel or mesh.KindUserspace
	Close() error
}

// Config is how weftd runs.
type Config struct {
	StateDir   string
	TUNName    string // e.g. "weft0"
	ListenPort int    // WireGuard UDP port; 0 picks a free one
	// WireGuardMode picks kernel or userspace WireGuard: mesh.ModeAuto ("" too),
	// mesh.ModeKernel or mesh.ModeUserspace.
	WireGuardMode string
	Logger        *slog.Logger
	// NewEngine creates the data plane; nil means mesh.Open.
	NewEngine func(mesh.Config) (Engine, error)
	// NewFirewall creates the enforcer of the access policy; nil means platform.NewFirewall.
	NewFirewall func(*slog.Logger) (platform.Firewall, error)
	// NewRouter and NewGateway create what puts chosen gateways' routes and this device's
	// gateway role into the OS (netconfig.go); nil means platform.NewRouter and
	// platform.NewGateway. Neither is created before it has something to do.
	NewRouter  func(*slog.Logger) (platform.Router, error)
	NewGateway func(*slog.Logger) (platform.Gateway, error)
	// NewNetWatcher creates what tells weftd that the host's network changed
	// (netwatch.go); nil means platform.NewNetWatcher.
	NewNetWatcher func(platform.NetWatchConfig) platform.NetWatcher
	// LocalPrefixes lists the host's addresses with their subnets; a virtual device's
	// LAN IP must be on one of them (gateway.go). Nil means mesh.LocalPrefixes.
	LocalPrefixes func() []netip.Prefix
	// NoPortMapping: do not ask the gateway (PCP, NAT-PMP) to forward a public port to
	// WireGuard's (portmap.go).
	NoPortMapping bool
}

// Daemon is a running weftd.
type Daemon struct {
	cfg       Config
	log       *slog.Logger
	store     *Store
	newEngine func(mesh.Config) (Engine, error)

	// opMu serialises lifecycle changes (start, Up, Down, Logout, shutdown). Control
	// loop callbacks never take it, so holding it while waiting for a session to end is safe.
	opMu sync.Mutex
	// saveMu serialises writes of state.json so that a later write never carries an
	// older snapshot. Taken before mu, never while holding it.
	saveMu  sync.Mutex
	saveReq chan struct{} // asks the saver goroutine for a (coalesced) write

	mu     sync.Mutex // guards the fields below
	key    wire.Key
	st     State // st.Map is not kept current in memory: peers is
	peers  PeerMap
	engine Engine            // nil while the tunnel is down
	fw     platform.Firewall // enforces the inbound filter while the tunnel is up; nil when down
	sess   *session          // control loop of the current tunnel; nil when none
	broker control.State
	// tunnelErr says why the tunnel failed to come up, for Status.
	tunnelErr string
	// enginePeersStale: the last SetPeers failed, so the next map must be pushed even
	// if it changes nothing.
	enginePeersStale bool
	// firewallStale: the last firewall Apply failed; the next map retries it.
	firewallStale bool
	// login is the browser login waiting for someone to sign in (login.go).
	login loginState

	events notifier // wakes local API event streams (events.go); has its own lock
}

// session is one run of the control loop and endpoint reporter for one tunnel.
type session struct {
	client *control.Client
	cancel context.CancelFunc
	done   chan struct{}   // closed when the session's goroutines have returned
	net    *netConfig      // routes and gateway rules of this tunnel (netconfig.go)
	pm     *portmap.Mapper // the port mapping on the gateway (portmap.go); nil when none is tried
}

// Open loads the state directory, creating a private key on a fresh install. A corrupt
// or inconsistent key or state file is an error: weftd never silently takes a new identity.
func Open(cfg Config) (*Daemon, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("no state directory")
	}
	if err := mesh.CheckMode(cfg.WireGuardMode); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	store, err := OpenStore(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	st, haveState, err := store.Load()
	if err != nil {
		return nil, err
	}
	key, haveKey, err := store.LoadKey()
	if err != nil {
		return nil, err
	}
	switch {
	case !haveKey && haveState && st.LoggedIn:
		return nil, fmt.Errorf("%s is missing but %s says this device is registered as %q; refusing to make a new identity (restore the key, or move %s away to start over)",
			store.path(keyFile), store.path(stateFile), st.Device.Name, stateFile)
	case !haveKey:
		if key, err = wire.NewPrivateKey(); err != nil {
			return nil, err
		}
		if err := store.SaveKey(key); err != nil {
			return nil, err
		}
		log.Info("created a new device key", "public_key", key.Public())
	case st.LoggedIn && !st.Device.PublicKey.IsZero() && st.Device.PublicKey != key.Public():
		return nil, fmt.Errorf("%s does not belong to the device in %s (public key %s, registered %s); refusing to run with a mismatched identity",
			store.path(keyFile), store.path(stateFile), key.Public(), st.Device.PublicKey)
	}
	newEngine := cfg.NewEngine
	if newEngine == nil {
		newEngine = func(c mesh.Config) (Engine, error) { return mesh.Open(c) }
	}
	return &Daemon{
		cfg:       cfg,
		log:       log,
		store:     store,
		newEngine: newEngine,
		saveReq:   make(chan struct{}, 1),
		key:       key,
		st:        st,
		peers:     LoadPeerMap(st.Map),
	}, nil
}

// Serve brings the tunnel up if it was up before (with the saved map, so tunnels work
// before the broker answers), serves the local API on ln until ctx is done, then shuts
// down: the listener (removing the socket), the control loop and the tunnel.
func (d *Daemon) Serve(ctx context.Context, ln net.Listener) error {
	saverCtx, stopSaver := context.WithCancel(context.Background())
	saverDone := make(chan struct{})
	go func() {
		defer close(saverDone)
		d.saver(saverCtx)
	}()

	d.opMu.Lock()
	d.mu.Lock()
	wanted := d.st.LoggedIn && d.st.WantedUp
	d.mu.Unlock()
	if wanted {
		if err := d.startLocked(); err != nil {
			d.log.Error("tunnel did not come up; weft up retries", "err", err)
		}
	}
	d.opMu.Unlock()

	srv := ipc.NewServer(NewHandler(d, d.log), d.log)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("serve local API: %w", err)
	}
	d.closeLocal() // ends event streams, which would hold Shutdown, and a waiting login
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if srv.Shutdown(shutdownCtx) != nil {
		srv.Close()
	}
	cancel()

	d.opMu.Lock()
	d.stopLocked()
	d.opMu.Unlock()
	stopSaver()
	<-saverDone
	d.log.Info("weftd stopped")
	return err
}

// startLocked brings the tunnel up for the registered device with the current peer map
// and starts the control loop. The caller holds opMu and has stopped any previous tunnel.
func (d *Daemon) startLocked() error {
	d.mu.Lock()
	st, key := d.st, d.key
	d.mu.Unlock()
	client, err := control.New(control.Config{
		BrokerURL:  st.Broker,
		CAPEM:      st.CAPEM,
		PrivateKey: key,
		Logger:     d.log.With("component", "control"),
	})
	if err != nil {
		return fmt.Errorf("broker settings: %w", err)
	}
	eng, err := d.newEngine(mesh.Config{
		TUNName:    d.cfg.TUNName,
		ListenPort: d.cfg.ListenPort,
		PrivateKey: key,
		Address:    netip.PrefixFrom(st.Device.Address, meshRange.Bits()),
		Logger:     d.log.With("component", "mesh"),
		Mode:       d.cfg.WireGuardMode,
	})
	if err != nil {
		client.Close()
		err = fmt.Errorf("bring the tunnel up: %w", err)
		d.mu.Lock()
		d.tunnelErr = err.Error()
		d.mu.Unlock()
		return err
	}
	// The policy is enforced before any peer is configured: the last known filter, or
	// deny-all for a device that has never had one.
	fw, err := d.startFirewall(eng, st.Device.Address)
	if err != nil {
		eng.Close()
		client.Close()
		d.mu.Lock()
		d.tunnelErr = err.Error()
		d.mu.Unlock()
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{client: client, cancel: cancel, done: make(chan struct{}),
		net: newNetConfig(d.log.With("component", "netconfig"), d.cfg, fw), pm: d.startPortMap(eng)}

	d.mu.Lock()
	d.engine, d.fw, d.sess, d.tunnelErr, d.broker = eng, fw, s, "", control.State{}
	if tr, ok := eng.(traversal); ok {
		tr.SetRelays(d.peers.Relays()) // the saved relays, until the broker says otherwise
	}
	if err := d.pushPeersLocked(); err != nil {
		d.log.Warn("saved peers not applied; the broker's map retries", "err", err)
	}
	d.mu.Unlock()

	var wg sync.WaitGroup
	wg.Go(func() {
		err := client.Run(ctx,
			func(u wire.MapUpdate) error { return d.onUpdate(s, u) },
			func(cs control.State) { d.onState(s, cs) })
		if !errors.Is(err, context.Canceled) {
			d.log.Info("control loop ended", "err", err)
		}
	})
	netChanged := make(chan struct{}, 1)
	wg.Go(func() { d.watchNetwork(ctx, eng.InterfaceName(), netChanged) })
	wg.Go(func() { runPortMap(ctx, s.pm) })
	wg.Go(func() { d.reportEndpoints(ctx, client, eng, netChanged, s.pm) })
	wg.Go(func() { s.net.run(ctx, d.netWantFunc(eng)) })
	go func() {
		wg.Wait()
		close(s.done)
	}()
	return nil
}

// stopLocked ends the control loop and closes the tunnel, leaving the saved state alone.
// The caller holds opMu.
func (d *Daemon) stopLocked() {
	d.mu.Lock()
	s := d.sess
	d.sess = nil
	d.mu.Unlock()
	if s != nil {
		s.cancel()
		<-s.done
		s.client.Close()
		s.net.close()
	}
	d.mu.Lock()
	eng, fw := d.engine, d.fw
	d.engine, d.fw, d.broker, d.enginePeersStale, d.firewallStale = nil, nil, control.State{}, false, false
	d.mu.Unlock()
	closeTunnel(d.log, eng, fw)
}

// startFirewall creates the firewall and enforces the current filter on eng's interface.
func (d *Daemon) startFirewall(eng Engine, self netip.Addr) (platform.Firewall, error) {
	newFW := d.cfg.NewFirewall
	if newFW == nil {
		newFW = platform.NewFirewall
	}
	fw, err := newFW(d.log.With("component", "firewall"))
	if err != nil {
		return nil, fmt.Errorf("access policy cannot be enforced: %w", err)
	}
	d.mu.Lock()
	filter := d.peers.Filter()
	d.mu.Unlock()
	if err := fw.Apply(eng.InterfaceName(), self, filter); err != nil {
		fw.Close()
		return nil, fmt.Errorf("enforce access policy: %w", err)
	}
	return fw, nil
}

// applyFilterLocked enforces the peer map's filter. The caller holds mu.
func (d *Daemon) applyFilterLocked() error {
	if d.fw == nil || d.engine == nil || d.st.Device == nil {
		return nil
	}
	if err := d.fw.Apply(d.engine.InterfaceName(), d.st.Device.Address, d.peers.Filter()); err != nil {
		d.firewallStale = true
		return fmt.Errorf("enforce access policy: %w", err)
	}
	d.firewallStale = false
	return nil
}

// closeTunnel removes the firewall rules and closes the tunnel, either of which may be nil.
func closeTunnel(log *slog.Logger, eng Engine, fw platform.Firewall) {
	if eng != nil {
		if err := eng.Close(); err != nil {
			log.Warn("close tunnel", "err", err)
		}
	}
	if fw != nil {
		if err := fw.Close(); err != nil {
			log.Warn("remove firewall rules", "err", err)
		}
	}
}

// pushPeersLocked hands the peer map to the engine. The caller holds mu.
func (d *Daemon) pushPeersLocked() error {
	if d.engine == nil {
		return nil
	}
	if err := d.engine.SetPeers(d.peers.WGPeers(connectedSubnets(), d.gatewayAllowedLocked())); err != nil {
		d.enginePeersStale = true
		return fmt.Errorf("configure peers: %w", err)
	}
	d.enginePeersStale = false
	return nil
}

// connectedSubnets lists the subnets this host reaches directly, without the mesh itself.
func connectedSubnets() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range mesh.LocalPrefixes() {
		if !meshRange.Contains(p.Addr()) {
			out = append(out, p)
		}
	}
	return out
}

// Status reports the daemon's state, with the peer map merged with live tunnel stats.
func (d *Daemon) Status(context.Context) wire.Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := wire.Status{Broker: d.st.Broker, Peers: []wire.PeerStatus{}, BrokerConnected: d.broker.Connected}
	if d.broker.Err != nil {
		s.BrokerError = d.broker.Err.Error()
	}
	if d.st.Device != nil && (d.st.LoggedIn || d.st.Revoked != "") {
		self := *d.st.Device
		s.Self = &self
	}
	switch {
	case !d.st.LoggedIn && d.st.Revoked != "":
		s.State, s.Reason = wire.StateRevoked, d.st.Revoked
	case !d.st.LoggedIn:
		s.State = wire.StateNeedsLogin
	case d.engine == nil:
		s.State, s.Reason = wire.StateStopped, d.tunnelErr
	case !d.peers.Complete:
		s.State = wire.StateStarting
	default:
		s.State = wire.StateRunning
	}
	d.login.report(&s)
	if d.st.LoggedIn {
		s.GatewayRoutes = resolveChoices(d.st.GatewayRoutes, &d.peers)
	}
	if d.sess != nil && d.sess.pm != nil {
		s.PortMapping = portMapView(d.sess.pm.Status())
	}
	var stats map[wire.Key]mesh.PeerStats
	if d.engine != nil {
		s.ListenPort, s.Interface, s.WireGuard = d.engine.ListenPort(), d.engine.InterfaceName(), d.engine.Kind()
		var err error
		if stats, err = d.engine.Stats(); err != nil {
			d.log.Warn("read tunnel stats", "err", err)
		}
	}
	now := time.Now()
	for _, p := range d.peers.List() {
		ps := wire.PeerStatus{Device: p}
		if st, ok := stats[p.PublicKey]; ok {
			ps.Endpoint, ps.LastHandshake, ps.RxBytes, ps.TxBytes = st.Endpoint, st.LastHandshake, st.RxBytes, st.TxBytes
			ps.Connected = !st.LastHandshake.IsZero() && now.Sub(st.LastHandshake) < connectedWithin
			ps.Path, ps.PathReason, ps.RTT = st.Path, st.Reason, st.RTT
			if st.PathAddr.IsValid() {
				ps.Endpoint = st.PathAddr
			}
		}
		s.Peers = append(s.Peers, ps)
	}
	return s
}
