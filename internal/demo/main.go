// Command demo runs weft in the network lab: a broker (with STUN and an embedded relay) on
// the lab's internet and four devices — two behind home NAT routers, one with a public
// address, one behind a carrier's symmetric NAT — brought up with `weft up`, then their
// status, dave's `weft netcheck` and a ping matrix over the mesh. It needs root; run it
// with ./build.sh demo.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/weftmesh/weft/internal/netlab"
	"github.com/weftmesh/weft/ipc"
	"github.com/weftmesh/weft/wire"
)

const (
	brokerPort = 443  // TCP: the broker's HTTPS
	relayPort  = 443  // UDP: the broker's embedded relay
	stunPort   = 3478 // and 3479
	wgPort     = 51820
	// settle bounds each wait for something to come up; the demo retries until then.
	settle = 60 * time.Second
)

func main() {
	bin := flag.String("bin", "bin", "directory holding the weft, weftd and weft-broker binaries")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *bin); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

// binaries are the absolute paths of the programs the demo runs.
type binaries struct{ weft, weftd, broker string }

func findBinaries(dir string) (binaries, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return binaries{}, err
	}
	b := binaries{
		weft:   filepath.Join(abs, "weft"),
		weftd:  filepath.Join(abs, "weftd"),
		broker: filepath.Join(abs, "weft-broker"),
	}
	for _, p := range []string{b.weft, b.weftd, b.broker} {
		if _, err := os.Stat(p); err != nil {
			return b, fmt.Errorf("%s is missing: build the host binaries first (./build.sh build)", p)
		}
	}
	return b, nil
}

// device is one weftd in the lab.
type device struct {
	name string
	host *netlab.Host
	sock string
	proc *netlab.Proc
	addr netip.Addr // mesh address, once up
}

func run(ctx context.Context, binDir string) (err error) {
	bins, err := findBinaries(binDir)
	if err != nil {
		return err
	}
	s, err := netlab.NewStandalone(func(format string, args ...any) { fmt.Printf(format+"\n", args...) })
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			s.Fail() // Close then prints the tails of the daemons' logs
		}
		fmt.Println("== tearing the lab down")
		s.Close()
	}()

	lab := netlab.New(s, "demo")
	inet := lab.Internet()
	brokerHost := lab.AddHost("broker", inet)
	home1, lan1 := lab.AddRouter("home1", inet, netlab.NATHome)
	home2, lan2 := lab.AddRouter("home2", inet, netlab.NATHome)
	carrier, lan3 := lab.AddRouter("carrier", inet, netlab.NATSymmetric)
	devs := []*device{
		{name: "alice", host: lab.AddHost("alice", lan1)},
		{name: "bob", host: lab.AddHost("bob", lan2)},
		{name: "carol", host: lab.AddHost("carol", inet)},
		{name: "dave", host: lab.AddHost("dave", lan3)},
	}
	fmt.Printf("== lab %s: internet %s\n", lab.Prefix(), inet.Prefix())
	fmt.Printf("   broker %s\n", brokerHost.Addr())
	fmt.Printf("   alice  %s behind home router %s (WAN %s)\n", devs[0].host.Addr(), home1.Name(), home1.Addr())
	fmt.Printf("   bob    %s behind home router %s (WAN %s)\n", devs[1].host.Addr(), home2.Name(), home2.Addr())
	fmt.Printf("   carol  %s with a public address\n", devs[2].host.Addr())
	fmt.Printf("   dave   %s behind a carrier's symmetric NAT %s (WAN %s): a new port for every destination\n", devs[3].host.Addr(), carrier.Name(), carrier.Addr())

	data := filepath.Join(s.TempDir(), "broker")
	listen := netip.AddrPortFrom(brokerHost.Addr(), brokerPort)
	fmt.Printf("== starting weft-broker on %s\n", listen)
	// STUN on two ports tells each device its NAT's behaviour; the embedded relay carries
	// first packets and coordinates hole punching (docs/NAT-TRAVERSAL.md).
	stun := fmt.Sprintf("%s:%d,%s:%d", brokerHost.Addr(), stunPort, brokerHost.Addr(), stunPort+1)
	relayUDP := netip.AddrPortFrom(brokerHost.Addr(), relayPort)
	broker := brokerHost.Start(bins.broker, "serve", "--data", data, "--listen", listen.String(), "--tls-san", brokerHost.Addr().String(),
		"--stun", stun, "--relay-udp", relayUDP.String())
	for _, f := range []string{"ca.pem", "admin.sock"} {
		if err := waitFor(ctx, broker, "weft-broker to create "+f, func() bool { return exists(filepath.Join(data, f)) }); err != nil {
			return err
		}
	}
	if _, err := brokerHost.Run(ctx, bins.broker, "--data", data, "account", "create", "demo"); err != nil {
		return err
	}
	out, err := brokerHost.Run(ctx, bins.broker, "--data", data, "authkey", "create", "demo", "--reusable")
	if err != nil {
		return err
	}
	authKey := lastField(string(out))
	if authKey == "" {
		return fmt.Errorf("weft-broker authkey create printed no key")
	}
	fmt.Println("== account demo created, with a reusable auth key")

	for _, d := range devs {
		state := s.TempDir()
		d.sock = filepath.Join(state, "weftd.sock")
		d.proc = d.host.Start(bins.weftd, "run", "--state", state, "--socket", d.sock, "--tun", "weft0", "--port", fmt.Sprint(wgPort))
		if err := waitFor(ctx, d.proc, "weftd on "+d.name+" to open its socket", func() bool { return exists(d.sock) }); err != nil {
			return err
		}
		fmt.Printf("== weft up on %s\n", d.name)
		out, err := d.host.Run(ctx, bins.weft, "--socket", d.sock, "up",
			"--broker", "https://"+listen.String(), "--ca", filepath.Join(data, "ca.pem"),
			"--auth-key", authKey, "--name", d.name)
		fmt.Print(indent(string(out)))
		if err != nil {
			return err
		}
	}

	for _, d := range devs {
		st, err := waitMeshed(ctx, d, len(devs)-1)
		if err != nil {
			return err
		}
		d.addr = st.Self.Address
	}
	// Every pair here can go direct: let hole punching (and for dave, birthday probing)
	// finish before showing the paths. The ping matrix below works either way: the relay
	// carries a pair until then.
	waitDirect(ctx, devs, 15*time.Second)
	for _, d := range devs {
		fmt.Printf("== weft status on %s (%s)\n", d.name, d.addr)
		out, err := d.host.Run(ctx, bins.weft, "--socket", d.sock, "status")
		fmt.Print(indent(string(out)))
		if err != nil {
			return err
		}
	}

	dave := devs[3]
	fmt.Printf("== weft netcheck on %s\n", dave.name)
	out, err = dave.host.Run(ctx, bins.weft, "--socket", dave.sock, "netcheck")
	fmt.Print(indent(string(out)))
	if err != nil {
		return err
	}

	fmt.Println("== ping matrix: each row pings each column by mesh IP with weft ping")
	failed := pingMatrix(ctx, bins, devs)
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d pings failed", failed, len(devs)*(len(devs)-1))
	}
	fmt.Println("== all devices reach each other over the mesh")
	return nil
}

// waitFor polls cond until it holds, the process exits, or the wait times out.
func waitFor(ctx context.Context, p *netlab.Proc, what string, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, settle)
	defer cancel()
	for !cond() {
		select {
		case <-p.Done():
			return fmt.Errorf("waiting for %s: it exited (%v)", what, p.Wait())
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// waitDirect waits, at most for d, until every device has a direct path to every peer.
func waitDirect(ctx context.Context, devs []*device, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		all := true
		for _, dev := range devs {
			st, err := (&ipc.Client{Path: dev.sock}).Status(ctx)
			if err != nil {
				all = false
				break
			}
			for _, p := range st.Peers {
				if !strings.HasPrefix(p.Path, "direct") {
					all = false
				}
			}
		}
		if all {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitMeshed waits until the device runs with a map listing all its peers.
func waitMeshed(ctx context.Context, d *device, peers int) (wire.Status, error) {
	var st wire.Status
	var last error
	err := waitFor(ctx, d.proc, fmt.Sprintf("%s to run with %d peers", d.name, peers), func() bool {
		st, last = (&ipc.Client{Path: d.sock}).Status(ctx)
		return last == nil && st.State == wire.StateRunning && st.Self != nil && len(st.Peers) == peers
	})
	if err != nil {
		if last != nil {
			err = fmt.Errorf("%w (last status: %v)", err, last)
		} else {
			err = fmt.Errorf("%w (last state %q, %d peers, broker error %q)", err, st.State, len(st.Peers), st.BrokerError)
		}
	}
	return st, err
}

// pingMatrix pings every device from every other, all pairs at once, retrying each until it
// answers or the wait runs out (NAT traversal may take a few handshakes), prints the matrix
// and returns how many pairs failed.
func pingMatrix(ctx context.Context, bins binaries, devs []*device) int {
	type result struct {
		ok  bool
		out string
	}
	results := make([][]result, len(devs))
	var wg sync.WaitGroup
	for i, from := range devs {
		results[i] = make([]result, len(devs))
		for j, to := range devs {
			if i == j {
				continue
			}
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(ctx, settle)
				defer cancel()
				for {
					out, err := from.host.Run(ctx, bins.weft, "--socket", from.sock, "ping", to.addr.String(), "-c", "1")
					results[i][j] = result{ok: err == nil, out: string(out)}
					if err == nil || ctx.Err() != nil {
						return
					}
					select {
					case <-ctx.Done():
						return
					case <-time.After(time.Second):
					}
				}
			})
		}
	}
	wg.Wait()

	fmt.Printf("   %-8s", "")
	for _, d := range devs {
		fmt.Printf("%-8s", d.name)
	}
	fmt.Println()
	failed := 0
	for i, from := range devs {
		fmt.Printf("   %-8s", from.name)
		for j := range devs {
			cell := "-"
			if i != j {
				cell = "ok"
				if !results[i][j].ok {
					cell = "FAIL"
					failed++
				}
			}
			fmt.Printf("%-8s", cell)
		}
		fmt.Println()
	}
	for i, from := range devs {
		for j, to := range devs {
			if i != j && !results[i][j].ok {
				fmt.Printf("== %s → %s failed:\n%s", from.name, to.name, indent(results[i][j].out))
			}
		}
	}
	return failed
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}

// lastField is the last word of a command's output: the key `authkey create` prints.
func lastField(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "   " + strings.ReplaceAll(s, "\n", "\n   ") + "\n"
}
