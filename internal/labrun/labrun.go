// Package labrun runs weft's real binaries — broker and devices — on hosts of a netlab, for
// end-to-end tests, benchmarks and the demo.
package labrun

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/netlab"
	"github.com/weftmesh/weft/wire"
)

// Binaries names the directory holding weft, weftd and weft-broker.
type Binaries struct{ Dir string }

func (b Binaries) path(name string) string { return filepath.Join(b.Dir, name) }

var (
	buildOnce sync.Once
	built     Binaries
	buildErr  error
)

// Build returns the binaries to run: those in $WEFT_BIN_DIR if set (build.sh test builds them
// once for every package), else this package's source tree built once per process.
func Build(t netlab.TB) Binaries {
	t.Helper()
	buildOnce.Do(func() {
		if dir := os.Getenv("WEFT_BIN_DIR"); dir != "" {
			built = Binaries{Dir: dir}
			return
		}
		dir, err := os.MkdirTemp("", "weft-bin-")
		if err != nil {
			buildErr = err
			return
		}
		built, buildErr = Binaries{Dir: dir}, BuildInto(dir)
	})
	if buildErr != nil {
		t.Fatalf("labrun: build binaries: %v", buildErr)
	}
	return built
}

// BuildInto builds the host binaries into dir.
func BuildInto(dir string) error {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/weft", "./cmd/weftd", "./cmd/weft-broker", "./cmd/weft-relay")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w: %s", err, out)
	}
	return nil
}

// Eventually calls cond until it returns nil or timeout passes; then it fails the test with
// cond's last error. End-to-end tests wait for behaviour this way, never for fixed times.
func Eventually(t netlab.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Poll(timeout, cond); err != nil {
		t.Fatalf("%s: not within %s: %v", what, timeout, err)
	}
}

// Poll calls cond every 50 ms until it returns nil or timeout passes, returning the last error.
func Poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func run(ctx context.Context, h *netlab.Host, args ...string) (string, error) {
	if ctx == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
	}
	out, err := h.Command(ctx, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s on %s: %w: %s", strings.Join(args, " "), h.Name(), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Broker is a weft-broker running on a lab host.
type Broker struct {
	t    netlab.TB
	bins Binaries
	Host *netlab.Host
	Data string
	Port int
	Proc *netlab.Proc
}

// StartBroker starts weft-broker on h, listening on h's address at port 8443, and waits
// until its admin socket answers.
func StartBroker(t netlab.TB, bins Binaries, h *netlab.Host) *Broker {
	t.Helper()
	b := &Broker{t: t, bins: bins, Host: h, Data: filepath.Join(t.TempDir(), "broker"), Port: 8443}
	b.Start()
	return b
}

// Start (re)starts the broker process on the same data directory.
func (b *Broker) Start() {
	b.t.Helper()
	b.Proc = b.Host.Start(b.bins.path("weft-broker"), "serve", "--data", b.Data,
		"--listen", fmt.Sprintf("%s:%d", b.Host.Addr(), b.Port), "--tls-san", b.Host.Addr().String(),
		"--domain", "weft.test", "--dns", b.Host.Addr().String()+":53",
		"--stun", fmt.Sprintf("%s:%d,%s:%d", b.Host.Addr(), STUNPort, b.Host.Addr(), STUNPort+1))
	Eventually(b.t, 20*time.Second, "broker admin socket", func() error {
		select {
		case <-b.Proc.Done():
			return fmt.Errorf("broker exited: %s", b.Proc.Log())
		default:
		}
		// Any answer from the admin socket will do; only "not running" means not yet.
		_, err := b.Admin("device", "list", "labrun-probe")
		if err != nil && strings.Contains(err.Error(), "not running") {
			return err
		}
		return nil
	})
}

// STUNPort is the first of the broker's two STUN ports in the lab.
const STUNPort = 3478

// Stop stops the broker process.
func (b *Broker) Stop() { b.Proc.Stop() }

// URL is the broker's HTTPS address.
func (b *Broker) URL() string { return fmt.Sprintf("https://%s:%d", b.Host.Addr(), b.Port) }

// CA is the path of the CA certificate devices must trust.
func (b *Broker) CA() string { return filepath.Join(b.Data, "ca.pem") }

// Admin runs a weft-broker admin command against the running broker.
func (b *Broker) Admin(args ...string) (string, error) {
	return run(nil, b.Host, append([]string{b.bins.path("weft-broker"), "--data", b.Data}, args...)...)
}

// MustAdmin is Admin that fails the test on error, returning trimmed output.
func (b *Broker) MustAdmin(args ...string) string {
	b.t.Helper()
	out, err := b.Admin(args...)
	if err != nil {
		b.t.Fatalf("%v", err)
	}
	return strings.TrimSpace(out)
}

// NewAccount creates an account and returns a reusable auth key for it.
func (b *Broker) NewAccount(name string) string {
	b.t.Helper()
	b.MustAdmin("account", "create", name)
	return b.MustAdmin("authkey", "create", name, "--reusable")
}

// Device is weftd running on a lab host, driven through the weft CLI.
type Device struct {
	t      netlab.TB
	bins   Binaries
	Host   *netlab.Host
	Name   string
	State  string
	Socket string
	Port   int
	Proc   *netlab.Proc
}

// StartDevice starts weftd on h with a fresh state directory and waits for its socket.
func StartDevice(t netlab.TB, bins Binaries, h *netlab.Host, name string) *Device {
	t.Helper()
	dir := t.TempDir()
	d := &Device{t: t, bins: bins, Host: h, Name: name, State: filepath.Join(dir, "state"),
		Socket: filepath.Join(dir, "weftd.sock"), Port: 51820}
	d.Start()
	return d
}

// Start (re)starts weftd on the same state directory and waits until it answers.
func (d *Device) Start() {
	d.t.Helper()
	d.Proc = d.Host.Start(d.bins.path("weftd"), "run", "--state", d.State, "--socket", d.Socket,
		"--tun", "weft0", "--port", fmt.Sprint(d.Port), "--log-level", "debug")
	Eventually(d.t, 20*time.Second, d.Name+": weftd socket", func() error {
		select {
		case <-d.Proc.Done():
			return fmt.Errorf("weftd exited: %s", d.Proc.Log())
		default:
		}
		_, err := d.Status()
		return err
	})
}

// Stop stops weftd.
func (d *Device) Stop() { d.Proc.Stop() }

// CLI runs the weft CLI against this device's weftd.
func (d *Device) CLI(args ...string) (string, error) {
	return run(nil, d.Host, append([]string{d.bins.path("weft"), "--socket", d.Socket}, args...)...)
}

// Up registers the device with the broker using an auth key and brings it up.
func (d *Device) Up(b *Broker, authKey string) {
	d.t.Helper()
	if out, err := d.CLI("up", "--broker", b.URL(), "--ca", b.CA(), "--auth-key", authKey, "--name", d.Name); err != nil {
		d.t.Fatalf("%s: weft up: %v\n%s", d.Name, err, out)
	}
}

// Status is `weft status --json`.
func (d *Device) Status() (wire.Status, error) {
	var st wire.Status
	out, err := d.CLI("status", "--json")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("%s: status is not JSON: %w: %s", d.Name, err, out)
	}
	return st, nil
}

// MustStatus is Status that fails the test on error.
func (d *Device) MustStatus() wire.Status {
	d.t.Helper()
	st, err := d.Status()
	if err != nil {
		d.t.Fatalf("%v", err)
	}
	return st
}

// Self returns the device's own record once it is registered.
func (d *Device) Self() wire.Device {
	d.t.Helper()
	var self wire.Device
	Eventually(d.t, 20*time.Second, d.Name+": registered", func() error {
		st, err := d.Status()
		if err != nil {
			return err
		}
		if st.Self == nil || !st.Self.Address.IsValid() {
			return fmt.Errorf("state %s, no address yet", st.State)
		}
		self = *st.Self
		return nil
	})
	return self
}

// Ping sends one ICMP echo through the mesh from this device's namespace with the system
// ping, so the packet takes the real path: kernel, TUN, weftd, WireGuard.
func (d *Device) Ping(to wire.Device) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := run(ctx, d.Host, "ping", "-n", "-c1", "-W1", to.Address.String())
	return err
}

// Relay is a weft-relay running on a lab host.
type Relay struct {
	Host *netlab.Host
	Data string
	Key  string // its public key, as weft-relay key prints it
	Proc *netlab.Proc
}

// Relay ports in the lab.
const (
	RelayUDPPort = 3480
	RelayTLSPort = 443
)

// StartRelay starts weft-relay on h (UDP and TLS) and registers it with the broker as the
// global relay name. extra are more flags for `weft-relay serve`.
func StartRelay(t netlab.TB, bins Binaries, h *netlab.Host, b *Broker, name string, extra ...string) *Relay {
	t.Helper()
	r := &Relay{Host: h, Data: filepath.Join(t.TempDir(), "relay")}
	// The key is made first, so serve and the key registered with the broker are one.
	out, err := run(nil, h, bins.path("weft-relay"), "key", "--data", r.Data)
	if err != nil {
		t.Fatalf("weft-relay key: %v", err)
	}
	r.Key = strings.TrimSpace(out)
	args := append([]string{"serve", "--data", r.Data,
		"--listen-udp", fmt.Sprintf("%s:%d", h.Addr(), RelayUDPPort),
		"--listen-tls", fmt.Sprintf("%s:%d", h.Addr(), RelayTLSPort)}, extra...)
	r.Proc = h.Start(bins.path("weft-relay"), args...)
	b.MustAdmin("relay", "add", "--global", name,
		"--udp", fmt.Sprintf("%s:%d", h.Addr(), RelayUDPPort),
		"--tls", fmt.Sprintf("%s:%d", h.Addr(), RelayTLSPort), "--key", r.Key)
	return r
}

// Peer returns this device's status of the peer called name.
func (d *Device) Peer(name string) (wire.PeerStatus, error) {
	st, err := d.Status()
	if err != nil {
		return wire.PeerStatus{}, err
	}
	for _, p := range st.Peers {
		if p.Name == name {
			return p, nil
		}
	}
	return wire.PeerStatus{}, fmt.Errorf("%s has no peer %s", d.Name, name)
}
