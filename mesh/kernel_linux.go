package mesh

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/weftmesh/weft/platform"
	"github.com/weftmesh/weft/wire"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// linkKind is the rtnetlink kind of kernel WireGuard interfaces.
const linkKind = "wireguard"

// kernelEngine runs a kernel WireGuard link, configured over generic netlink (wgctrl).
type kernelEngine struct {
	name string
	port int
	log  *slog.Logger

	mu sync.Mutex // guards the fields below, and serialises use of wg
	wg *wgctrl.Client
	// link is the interface created, kept so Close deletes it by index, not by a name
	// that could by then belong to another interface.
	link netlink.Link
	// peers is what was last configured, so SetPeers can send only the difference (see
	// peerConfigs).
	peers  map[wire.Key]Peer
	closed bool
}

// newKernel creates a kernel WireGuard link named cfg.TUNName and brings it up. An error
// that means the kernel has no WireGuard is an unsupportedError.
func newKernel(cfg Config, log *slog.Logger) (Device, error) {
	name := cfg.TUNName
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = DefaultMTU
	}
	if err := claimName(name, log); err != nil {
		return nil, err
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU = name, mtu
	if err := netlink.LinkAdd(&netlink.Wireguard{LinkAttrs: attrs}); err != nil {
		err = fmt.Errorf("create %s interface %s: %w", linkKind, name, err)
		// The kernel answers EOPNOTSUPP for a link kind it does not know (after failing
		// to load a module for it).
		if errors.Is(err, unix.EOPNOTSUPP) {
			return nil, unsupportedError{fmt.Errorf("%w (no wireguard kernel module)", err)}
		}
		return nil, err
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("find the new interface %s: %w", name, err)
	}
	e := &kernelEngine{name: name, log: log, link: link, peers: map[wire.Key]Peer{}}
	if err := e.setUp(cfg); err != nil {
		if cerr := e.Close(); cerr != nil {
			log.Warn("remove the half-configured interface", "interface", name, "err", cerr)
		}
		return nil, err
	}
	log.Info("tunnel up", "interface", name, "address", cfg.Address, "port", e.port, "wireguard", KindKernel)
	return e, nil
}

// claimName makes sure name is free for a new WireGuard link. A WireGuard link of that
// name is a leftover of a run that crashed (a kernel link outlives its process) and is
// removed; any other interface is not ours to touch.
func claimName(name string, log *slog.Logger) error {
	link, err := netlink.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		return nil
	case err != nil:
		return fmt.Errorf("look up interface %s: %w", name, err)
	case link.Type() != linkKind:
		return fmt.Errorf("interface %s already exists and is a %s interface, not WireGuard; refusing to replace it", name, link.Type())
	}
	log.Warn("removing a WireGuard interface left over from an earlier run", "interface", name)
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("remove leftover WireGuard interface %s: %w", name, err)
	}
	return nil
}

// setUp gives the new link its key, port and address and reads back the port.
func (e *kernelEngine) setUp(cfg Config) error {
	wg, err := wgctrl.New()
	if err != nil {
		return fmt.Errorf("open WireGuard netlink control: %w", err)
	}
	e.wg = wg
	key := wgtypes.Key(cfg.PrivateKey)
	port := cfg.ListenPort
	if err := wg.ConfigureDevice(e.name, wgtypes.Config{PrivateKey: &key, ListenPort: &port, ReplacePeers: true}); err != nil {
		return fmt.Errorf("configure WireGuard interface %s: %w", e.name, err)
	}
	if err := platform.ConfigureInterfaceByName(e.name, cfg.Address); err != nil {
		return err
	}
	dev, err := wg.Device(e.name)
	if err != nil {
		return fmt.Errorf("read WireGuard state of %s: %w", e.name, err)
	}
	e.port = dev.ListenPort
	return nil
}

func (e *kernelEngine) ListenPort() int       { return e.port }
func (e *kernelEngine) InterfaceName() string { return e.name }
func (e *kernelEngine) Kind() string          { return KindKernel }

func (e *kernelEngine) SetPeers(peers []Peer) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("mesh: engine closed")
	}
	want := make(map[wire.Key]Peer, len(peers))
	for _, p := range peers {
		want[p.PublicKey] = p
	}
	pcs := peerConfigs(e.peers, want)
	if len(pcs) == 0 {
		return nil
	}
	if err := e.wg.ConfigureDevice(e.name, wgtypes.Config{Peers: pcs}); err != nil {
		return fmt.Errorf("configure peers: %w", err)
	}
	e.peers = want
	return nil
}

func (e *kernelEngine) Stats() (map[wire.Key]PeerStats, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, errors.New("mesh: engine closed")
	}
	dev, err := e.wg.Device(e.name)
	if err != nil {
		return nil, fmt.Errorf("read WireGuard state: %w", err)
	}
	return peerStats(dev), nil
}

// Close deletes the link, which takes its address and routes with it.
func (e *kernelEngine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	var errs []error
	if e.wg != nil {
		if err := e.wg.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close WireGuard netlink control: %w", err))
		}
	}
	var notFound netlink.LinkNotFoundError
	if err := netlink.LinkDel(e.link); err != nil && !errors.As(err, &notFound) && !errors.Is(err, unix.ENODEV) {
		errs = append(errs, fmt.Errorf("remove interface %s: %w", e.name, err))
	}
	return errors.Join(errs...)
}
