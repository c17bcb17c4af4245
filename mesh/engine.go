// Package mesh is weft's data plane: a WireGuard interface whose peers are configured
// in-process, never through a UAPI socket — wireguard-go with weft's path-selecting bind,
// or kernel WireGuard.
package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/mesh/bind"
	"github.com/weftmesh/weft/mesh/disco"
	"github.com/weftmesh/weft/mesh/paths"
	"github.com/weftmesh/weft/mesh/stun"
	"github.com/weftmesh/weft/platform"
	"github.com/weftmesh/weft/wire"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

// DefaultMTU leaves room, inside a 1500-byte path, for WireGuard's 80 bytes of IPv6 + UDP +
// transport overhead and the relay's 41 bytes of framing: with 1420, every full-size
// relayed packet was fragmented and relayed TCP ran at a third of the speed it does now.
const DefaultMTU = 1380

// InboundBuffers and OutboundBuffers bound wireguard-go's two pools of message buffers (64
// KiB each; upstream's one pool is unbounded, and under load resident memory reached
// hundreds of MB). weft's copy splits that pool (third_party/WIREGUARD-GO.md) so that
// packets staged for a peer without a session cannot starve the receive path that would
// complete its handshake. On Linux each receive routine holds a batch of 128 buffers for
// good and the bind has three receive functions (IPv4, IPv6, relay): the inbound bound must
// exceed 384, or a routine waits for good, and the 64 beyond are in flight. The TUN reader
// holds 128 outbound buffers; staged packets may take up to half the pool, and the rest is
// in flight. Larger bounds gained no throughput in the Tunnel benchmark, only memory
// (docs/BENCHMARKS.md).
const (
	InboundBuffers  = 3*128 + 64
	OutboundBuffers = 2 * 128
)

// boundPools sets wireguard-go's pool bounds once per process, before the first device.
var boundPools = sync.OnceFunc(func() {
	device.InboundBuffers, device.OutboundBuffers = InboundBuffers, OutboundBuffers
})

// Config describes the tunnel an Engine runs.
type Config struct {
	TUNName    string // interface name, e.g. "weft0"
	ListenPort int    // UDP port; 0 picks a free one (see Engine.ListenPort)
	PrivateKey wire.Key
	Address    netip.Prefix // mesh address with the mesh range's prefix, e.g. 100.64.0.5/10
	MTU        int          // 0 means DefaultMTU
	Logger     *slog.Logger
	Mode       string // ModeAuto ("" too), ModeKernel or ModeUserspace; used by Open, not New
	// DialRelay connects to a relay; nil means relayclient (UDP, else TLS). Tests
	// replace it.
	DialRelay RelayDialer
}

// Candidate kinds, as Candidate.Kind says where an address came from.
const (
	CandidatePublic    = "public"    // the address the broker saw the device at
	CandidateReflexive = "reflexive" // a public mapping the device learned (STUN, peers)
	CandidateLAN       = "lan"       // one of the device's own interface addresses
)

// Candidate is an address a peer may be reached at.
type Candidate struct {
	Addr netip.AddrPort
	Kind string // CandidatePublic, CandidateReflexive or CandidateLAN
}

// Peer is one WireGuard peer as the engine should run it.
type Peer struct {
	PublicKey  wire.Key
	AllowedIPs []netip.Prefix
	// Candidates are where the peer may be reached; the userspace engine probes them all
	// and picks the best path (docs/NAT-TRAVERSAL.md).
	Candidates []Candidate
	// Endpoint is a single address, for callers that know no candidates: the userspace
	// engine takes it as a public candidate when Candidates is empty; kernel WireGuard
	// sends to it. Zero: none known; the peer must reach us first.
	Endpoint            netip.AddrPort
	NAT                 string // what the peer reported of its NAT (a wire.NAT* value)
	PersistentKeepalive time.Duration
}

// PeerStats is a peer's live tunnel state.
type PeerStats struct {
	// Endpoint is where packets go now, when that is an address: the direct path, or an
	// address WireGuard roamed to, or, before any path is known, the first candidate.
	Endpoint      netip.AddrPort
	LastHandshake time.Time
	RxBytes       uint64
	TxBytes       uint64
	// Path is how packets travel: "direct lan", "direct", "relay NAME" or "none"; empty
	// where the implementation does not choose paths (kernel WireGuard).
	Path     string
	PathAddr netip.AddrPort // the direct path's address
	RTT      time.Duration  // the path's last measured round trip; 0: not measured
	Reason   string         // why the peer is not on a direct path
}

// Engine runs one WireGuard interface in userspace, with weft's bind: one UDP socket for
// WireGuard, disco and STUN, and per-peer path selection over direct addresses and the relay.
type Engine struct {
	dev   *device.Device
	tun   tun.Device
	bind  *bind.Bind
	codec *disco.Codec
	priv  wire.Key
	name  string
	port  int
	mesh  netip.Prefix // the mesh range, never an endpoint candidate
	log   *slog.Logger
	dial  RelayDialer

	// peerSet is the configured peer keys, replaced whole: disco from anyone else is
	// dropped before any cryptography.
	peerSet atomic.Pointer[map[wire.Key]bool]

	mu sync.Mutex // guards peers and closed; taken before pmu, never while holding it
	// peers is what was last configured in WireGuard, so SetPeers sends only the difference.
	peers  map[wire.Key]Peer
	closed bool

	// pmu guards the path manager and the state beside it (engine_paths.go).
	pmu   sync.Mutex
	paths *paths.Manager
	ps    pathState

	events chan discoEvent // disco messages for the path loop
	wake   chan struct{}   // makes the path loop tick now
	lost   chan struct{}   // see PathLost
	stop   context.CancelFunc
	done   chan struct{} // closed when the path loop returned

	stunMu   sync.Mutex // guards stunWait
	stunWait map[stun.TxID]chan<- stunAnswer

	relayOp sync.Mutex // serialises SetRelays and Close's stopping of the relay manager
	relayMu sync.Mutex // guards relay
	relay   relayRun
}

// New creates the TUN interface and the WireGuard device, assigns the address and brings
// both up. The caller must Close it.
func New(cfg Config) (*Engine, error) {
	if cfg.PrivateKey.IsZero() {
		return nil, errors.New("mesh: no private key")
	}
	if !cfg.Address.IsValid() {
		return nil, errors.New("mesh: no mesh address")
	}
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = DefaultMTU
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	boundPools()
	// CreateTUN opens the device with IFF_VNET_HDR on Linux, which enables TSO/GRO
	// offload; without it throughput drops about fivefold.
	tdev, err := tun.CreateTUN(cfg.TUNName, mtu)
	if err != nil {
		return nil, fmt.Errorf("create TUN %q: %w", cfg.TUNName, err)
	}
	name, err := tdev.Name()
	if err != nil {
		tdev.Close()
		return nil, fmt.Errorf("TUN name: %w", err)
	}
	e := &Engine{
		tun: tdev, codec: disco.NewCodec(cfg.PrivateKey), priv: cfg.PrivateKey, name: name,
		mesh: cfg.Address.Masked(), log: log, dial: cfg.DialRelay, peers: map[wire.Key]Peer{},
		paths: paths.New(paths.Config{}), events: make(chan discoEvent, 256),
		wake: make(chan struct{}, 1), lost: make(chan struct{}, 1), done: make(chan struct{}), stunWait: map[stun.TxID]chan<- stunAnswer{},
	}
	if e.dial == nil {
		e.dial = e.dialRelayClient
	}
	e.peerSet.Store(&map[wire.Key]bool{})
	e.ps.init()
	e.bind = bind.New(bind.Config{Self: cfg.PrivateKey.Public(), Disco: e.onDisco, STUN: e.onSTUN})
	wlog := log.With("component", "wireguard")
	dev := device.NewDevice(tdev, e.bind, &device.Logger{
		Verbosef: func(format string, args ...any) { wlog.Debug(fmt.Sprintf(format, args...)) },
		Errorf:   func(format string, args ...any) { wlog.Error(fmt.Sprintf(format, args...)) },
	})
	e.dev = dev
	if err := dev.IpcSet(fmt.Sprintf("private_key=%s\nlisten_port=%d\n", cfg.PrivateKey.Hex(), cfg.ListenPort)); err != nil {
		dev.Close()
		return nil, fmt.Errorf("configure WireGuard device: %w", err)
	}
	if err := platform.ConfigureInterface(tdev, cfg.Address); err != nil {
		dev.Close()
		return nil, err
	}
	if err := dev.Up(); err != nil {
		dev.Close()
		return nil, fmt.Errorf("bring WireGuard device up: %w", err)
	}
	st, err := e.get()
	if err != nil {
		dev.Close()
		return nil, err
	}
	e.port = st.listenPort
	e.refreshSelf()
	ctx, stop := context.WithCancel(context.Background())
	e.stop = stop
	go e.pathLoop(ctx)
	log.Info("tunnel up", "interface", name, "address", cfg.Address, "port", e.port, "wireguard", KindUserspace)
	return e, nil
}

// ListenPort is the UDP port the device is bound to.
func (e *Engine) ListenPort() int { return e.port }

// InterfaceName is the TUN interface's name.
func (e *Engine) InterfaceName() string { return e.name }

// SetPeers makes the configured peer set exactly peers. Peers whose WireGuard
// configuration did not change keep their sessions; new candidates are probed at once.
func (e *Engine) SetPeers(peers []Peer) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("mesh: engine closed")
	}
	// WireGuard sees only keys, allowed IPs and keepalives: every peer's endpoint is
	// the peer itself (bind.PeerEndpoint), and the path manager gets the addresses.
	want := make(map[wire.Key]Peer, len(peers))
	set := make(map[wire.Key]bool, len(peers))
	pp := make([]paths.Peer, 0, len(peers))
	for _, p := range peers {
		want[p.PublicKey] = Peer{PublicKey: p.PublicKey, AllowedIPs: p.AllowedIPs, PersistentKeepalive: p.PersistentKeepalive}
		set[p.PublicKey] = true
		pp = append(pp, paths.Peer{Key: p.PublicKey, Candidates: pathCandidates(p), NAT: p.NAT})
	}
	var removed []wire.Key
	for k := range e.peers {
		if !set[k] {
			removed = append(removed, k)
		}
	}
	// Paths first: a new peer's first packets (WireGuard sends a handshake as soon as a
	// keepalive is configured) must find a route, or wait for WireGuard's retry.
	e.peerSet.Store(&set)
	e.pmu.Lock()
	out := e.paths.SetPeers(pp, time.Now())
	e.applyLocked()
	e.pmu.Unlock()
	var err error
	if cmd := peerDiff(e.peers, want); cmd != "" {
		if err = e.dev.IpcSet(cmd); err != nil {
			err = fmt.Errorf("configure peers: %w", err)
		} else {
			e.peers = want
		}
	}
	for _, k := range removed {
		e.codec.Forget(k)
	}
	e.sendAll(out)
	e.poke()
	return err
}

// pathCandidates turns a Peer's addresses into the path manager's candidates.
func pathCandidates(p Peer) []paths.Candidate {
	var out []paths.Candidate
	for _, c := range p.Candidates {
		out = append(out, paths.Candidate{Addr: c.Addr, LAN: c.Kind == CandidateLAN})
	}
	if len(out) == 0 && p.Endpoint.IsValid() {
		out = append(out, paths.Candidate{Addr: p.Endpoint})
	}
	return out
}

// Stats returns the live state of every configured peer, with its path.
func (e *Engine) Stats() (map[wire.Key]PeerStats, error) {
	st, err := e.get()
	if err != nil {
		return nil, err
	}
	e.pmu.Lock()
	defer e.pmu.Unlock()
	for k, s := range st.peers {
		p := e.paths.Path(k)
		s.Path, s.PathAddr, s.RTT, s.Reason = p.Kind.String(), p.Addr, p.RTT, e.paths.Reason(k)
		if p.Kind == paths.Relay && e.ps.relayName != "" {
			s.Path += " " + e.ps.relayName
		}
		if !s.Endpoint.IsValid() {
			// WireGuard's endpoint is the peer itself; the address is the path's, or with
			// no path yet, the first candidate (the one the broker saw the peer at).
			s.Endpoint = p.Addr
			if cs := e.paths.Candidates(k); p.Kind == paths.None && len(cs) > 0 {
				s.Endpoint = cs[0].Addr
			}
		}
		st.peers[k] = s
	}
	return st.peers, nil
}

func (e *Engine) get() (deviceState, error) {
	s, err := e.dev.IpcGet()
	if err != nil {
		return deviceState{}, fmt.Errorf("read WireGuard state: %w", err)
	}
	return parseState(s)
}

// Close tears down the relay connection, the path loop, the device and its interface.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	e.stopRelay()
	e.stop()
	<-e.done
	e.dev.Close() // closes the bind and the TUN, which removes the interface
	return nil
}
