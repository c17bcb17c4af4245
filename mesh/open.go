package mesh

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/weftmesh/weft/wire"
)

// WireGuard implementations Config.Mode selects.
const (
	ModeAuto      = "auto"      // kernel WireGuard where the OS has it, else userspace
	ModeKernel    = "kernel"    // kernel WireGuard or nothing
	ModeUserspace = "userspace" // wireguard-go on a TUN device
)

// Device kinds, as Device.Kind reports them.
const (
	KindKernel    = "kernel"
	KindUserspace = "userspace"
)

// Device is one running WireGuard interface, whichever implementation runs it. Its
// methods may be called from several goroutines.
type Device interface {
	// SetPeers makes the configured peer set exactly peers. Peers whose configuration did
	// not change are not touched, so their sessions and learned (roamed) endpoints survive.
	SetPeers(peers []Peer) error
	// Stats returns the live state of every configured peer.
	Stats() (map[wire.Key]PeerStats, error)
	// ListenPort is the UDP port the device is bound to (the one picked, if Config asked for 0).
	ListenPort() int
	// InterfaceName is the network interface's name.
	InterfaceName() string
	// Kind says which implementation runs the device: KindKernel or KindUserspace.
	Kind() string
	// Close removes the interface; later calls do nothing.
	Close() error
}

// Kind reports that Engine is userspace WireGuard.
func (e *Engine) Kind() string { return KindUserspace }

// CheckMode says whether mode is a valid Config.Mode ("" counts as ModeAuto).
func CheckMode(mode string) error {
	switch mode {
	case "", ModeAuto, ModeKernel, ModeUserspace:
		return nil
	}
	return fmt.Errorf("unknown WireGuard mode %q (want %s, %s or %s)", mode, ModeAuto, ModeKernel, ModeUserspace)
}

// unsupportedError says the OS has no kernel WireGuard; in ModeAuto, Open falls back to
// userspace on it and on nothing else.
type unsupportedError struct{ err error }

func (e unsupportedError) Error() string { return e.err.Error() }
func (e unsupportedError) Unwrap() error { return e.err }

// Open creates the WireGuard interface cfg describes with the implementation cfg.Mode
// selects, assigns the address and brings it up. The caller must Close it.
func Open(cfg Config) (Device, error) {
	if err := CheckMode(cfg.Mode); err != nil {
		return nil, fmt.Errorf("mesh: %w", err)
	}
	if cfg.PrivateKey.IsZero() {
		return nil, errors.New("mesh: no private key")
	}
	if !cfg.Address.IsValid() {
		return nil, errors.New("mesh: no mesh address")
	}
	if cfg.TUNName == "" {
		return nil, errors.New("mesh: no interface name")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.Mode == ModeUserspace {
		return openUserspace(cfg)
	}
	dev, err := newKernel(cfg, log)
	var unsupported unsupportedError
	switch {
	case err == nil:
		return dev, nil
	case !errors.As(err, &unsupported):
		return nil, err
	case cfg.Mode == ModeKernel:
		return nil, fmt.Errorf("kernel WireGuard not available: %w", err)
	}
	log.Info("kernel WireGuard not available; using userspace wireguard-go", "reason", err)
	return openUserspace(cfg)
}

// openUserspace is New, without handing a nil *Engine back as a non-nil Device.
func openUserspace(cfg Config) (Device, error) {
	e, err := New(cfg)
	if err != nil {
		return nil, err
	}
	return e, nil
}
