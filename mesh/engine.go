// Package mesh is weft's data plane: a wireguard-go device on a TUN interface whose peers
// are configured in-process, never through a UAPI socket.
package mesh

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/weftmesh/weft/platform"
	"github.com/weftmesh/weft/wire"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

// DefaultMTU leaves room for WireGuard's 80 bytes of IPv6 + UDP + transport overhead
// inside a 1500-byte path.
const DefaultMTU = 1420

// PoolBuffers bounds each of wireguard-go's buffer pools (upstream leaves them unbounded:
// each message buffer is 64 KiB, and under load resident memory reached hundreds of MB).
// It must exceed what the readers hold while blocked: one batch for the TUN reader and one
// per bind receive function (IPv4 and IPv6), 128 each; beyond that it is packets in flight.
const PoolBuffers = 512

// boundPools sets wireguard-go's pool bound once per process, before the first device.
var boundPools = sync.OnceFunc(func() { device.PreallocatedBuffersPerPool = PoolBuffers })

// Config describes the tunnel an Engine runs.
type Config struct {
	TUNName    string // interface name, e.g. "weft0"
	ListenPort int    // UDP port; 0 picks a free one (see Engine.ListenPort)
	PrivateKey wire.Key
	Address    netip.Prefix // mesh address with the mesh range's prefix, e.g. 100.64.0.5/10
	MTU        int          // 0 means DefaultMTU
	Logger     *slog.Logger
	Mode       string // ModeAuto ("" too), ModeKernel or ModeUserspace; used by Open, not New
}

// Peer is one WireGuard peer as the engine should run it.
type Peer struct {
	PublicKey           wire.Key
	AllowedIPs          []netip.Prefix
	Endpoint            netip.AddrPort // zero: none known; the peer must reach us first
	PersistentKeepalive time.Duration
}

// PeerStats is a peer's live tunnel state.
type PeerStats struct {
	Endpoint      netip.AddrPort // where packets go now (learned by roaming if the peer moved)
	LastHandshake time.Time
	RxBytes       uint64
	TxBytes       uint64
}

// Engine runs one WireGuard interface.
type Engine struct {
	dev  *device.Device
	tun  tun.Device
	name string
	port int
	log  *slog.Logger

	mu sync.Mutex // guards peers and closed
	// peers is what was last configured, so SetPeers can send only the difference and does
	// not reset an endpoint that WireGuard learned from the peer (roaming).
	peers  map[wire.Key]Peer
	closed bool
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
	wlog := log.With("component", "wireguard")
	dev := device.NewDevice(tdev, conn.NewDefaultBind(), &device.Logger{
		Verbosef: func(format string, args ...any) { wlog.Debug(fmt.Sprintf(format, args...)) },
		Errorf:   func(format string, args ...any) { wlog.Error(fmt.Sprintf(format, args...)) },
	})
	e := &Engine{dev: dev, tun: tdev, name: name, log: log, peers: map[wire.Key]Peer{}}
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
	log.Info("tunnel up", "interface", name, "address", cfg.Address, "port", e.port)
	return e, nil
}

// ListenPort is the UDP port the device is bound to.
func (e *Engine) ListenPort() int { return e.port }

// InterfaceName is the TUN interface's name.
func (e *Engine) InterfaceName() string { return e.name }

// SetPeers makes the configured peer set exactly peers. Peers whose configuration did not
// change are not touched, so their sessions and learned endpoints survive.
func (e *Engine) SetPeers(peers []Peer) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("mesh: engine closed")
	}
	want := make(map[wire.Key]Peer, len(peers))
	for _, p := range peers {
		want[p.PublicKey] = p
	}
	cmd := peerDiff(e.peers, want)
	if cmd == "" {
		return nil
	}
	if err := e.dev.IpcSet(cmd); err != nil {
		return fmt.Errorf("configure peers: %w", err)
	}
	e.peers = want
	return nil
}

// Stats returns the live state of every configured peer.
func (e *Engine) Stats() (map[wire.Key]PeerStats, error) {
	st, err := e.get()
	if err != nil {
		return nil, err
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

// Close tears down the device and its interface.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	e.dev.Close() // closes the TUN too, which removes the interface
	return nil
}
