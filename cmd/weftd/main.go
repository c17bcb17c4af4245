// Command weftd is weft's device daemon: it runs the tunnel, follows the broker's map and
// serves the local API that the weft CLI uses.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	ksvc "github.com/kardianos/service"
	"github.com/weftmesh/weft/ipc"
	"github.com/weftmesh/weft/mesh"
	"github.com/weftmesh/weft/service"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: weftd run [--state DIR] [--socket PATH] [--tun NAME] [--port N] [--wg-mode auto|kernel|userspace] [--no-port-mapping] [--log-level LEVEL]
       weftd install [same flags as run]
       weftd uninstall | start | stop | version`

// options are weftd's flags; install stores them as the service's arguments.
type options struct {
	state     string
	socket    string
	tun       string
	port      int
	wgMode    string
	noPortMap bool
	logLevel  slog.Level
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	var opts options
	fs := flag.NewFlagSet("weftd "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&opts.state, "state", defaultStateDir(), "state directory")
	fs.StringVar(&opts.socket, "socket", ipc.DefaultSocketPath(), "local API socket (named pipe on Windows)")
	fs.StringVar(&opts.tun, "tun", "weft0", "tunnel interface name")
	fs.IntVar(&opts.port, "port", 51820, "WireGuard UDP port (0 picks a free one)")
	// Userspace by default: NAT traversal and relays need weft's own socket, which kernel
	// WireGuard does not give (docs/ARCHITECTURE.md, "WireGuard implementations").
	fs.StringVar(&opts.wgMode, "wg-mode", mesh.ModeUserspace, "WireGuard implementation: userspace (default: hole punching and relays), kernel (direct paths only), or auto (kernel where available)")
	fs.BoolVar(&opts.noPortMap, "no-port-mapping", false, "do not ask the gateway (PCP, NAT-PMP) to forward a public port to WireGuard's")
	fs.TextVar(&opts.logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		if err == nil {
			err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
		}
		fmt.Fprintf(stderr, "weftd: %v\n%s\n", err, usage)
		return 2
	}
	if opts.port < 0 || opts.port > 65535 {
		fmt.Fprintf(stderr, "weftd: --port %d is not a UDP port\n%s\n", opts.port, usage)
		return 2
	}
	if opts.wgMode == "" {
		// CheckMode reads "" as auto; on the command line it is more likely a mistake.
		fmt.Fprintf(stderr, "weftd: --wg-mode needs a value: auto, kernel or userspace\n%s\n", usage)
		return 2
	}
	if err := mesh.CheckMode(opts.wgMode); err != nil {
		fmt.Fprintf(stderr, "weftd: --wg-mode: %v\n%s\n", err, usage)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: opts.logLevel}))

	var err error
	switch cmd {
	case "run":
		err = runDaemon(opts, log)
	case "install", "uninstall", "start", "stop":
		err = control(cmd, opts, log)
	case "version":
		fmt.Printf("weftd %s\n", version)
	default:
		fmt.Fprintf(stderr, "weftd: unknown command %q\n%s\n", cmd, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "weftd: %v\n", err)
		return 1
	}
	return 0
}

// program runs the daemon under kardianos/service's Start/Stop protocol.
type program struct {
	opts   options
	log    *slog.Logger
	cancel context.CancelFunc
	exited chan struct{} // closed when Serve has returned
	err    error         // Serve's result, readable once exited is closed
}

// Start opens the state and the socket, so that their errors fail the start, then
// serves in the background.
func (p *program) Start(ksvc.Service) error {
	d, err := service.Open(service.Config{
		StateDir:      p.opts.state,
		TUNName:       p.opts.tun,
		ListenPort:    p.opts.port,
		WireGuardMode: p.opts.wgMode,
		NoPortMapping: p.opts.noPortMap,
		Logger:        p.log,
	})
	if err != nil {
		return err
	}
	ln, err := ipc.Listen(p.opts.socket)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.exited = cancel, make(chan struct{})
	p.log.Info("weftd starting", "version", version, "state", p.opts.state, "socket", p.opts.socket)
	go func() {
		p.err = d.Serve(ctx, ln)
		close(p.exited)
		if ctx.Err() == nil {
			// Serve cleaned up already; a supervisor restarts us.
			p.log.Error("weftd stopped on its own", "err", p.err)
			os.Exit(1)
		}
	}()
	return nil
}

// Stop shuts the daemon down and waits for it, within reason.
func (p *program) Stop(ksvc.Service) error {
	p.cancel()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(20 * time.Second):
		return errors.New("shutdown timed out")
	}
}

func runDaemon(opts options, log *slog.Logger) error {
	p := &program{opts: opts, log: log}
	if !ksvc.Interactive() {
		// Under a service manager (systemd, launchd, Windows' SCM) its protocol decides
		// when to stop.
		s, err := newService(p, opts)
		if err != nil {
			return err
		}
		return s.Run()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := p.Start(nil); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-p.exited:
	}
	return p.Stop(nil)
}

func newService(p *program, opts options) (ksvc.Service, error) {
	state, err := filepath.Abs(opts.state)
	if err != nil {
		return nil, err
	}
	socket := opts.socket
	if socket != ipc.DefaultSocketPath() {
		if socket, err = filepath.Abs(socket); err != nil {
			return nil, err
		}
	}
	logLevel, _ := opts.logLevel.MarshalText()
	args := []string{"run",
		"--state", state,
		"--socket", socket,
		"--tun", opts.tun,
		"--port", strconv.Itoa(opts.port),
		"--wg-mode", opts.wgMode,
		"--log-level", string(logLevel),
	}
	if opts.noPortMap {
		args = append(args, "--no-port-mapping")
	}
	s, err := ksvc.New(p, &ksvc.Config{
		Name:        "weftd",
		DisplayName: "weft mesh daemon",
		Description: "Runs this device's weft tunnel and follows its broker's map.",
		Arguments:   args,
	})
	if err != nil {
		return nil, fmt.Errorf("service manager: %w", err)
	}
	return s, nil
}

// control installs, removes, starts or stops the system service.
func control(cmd string, opts options, log *slog.Logger) error {
	s, err := newService(&program{opts: opts, log: log}, opts)
	if err != nil {
		return err
	}
	if err := ksvc.Control(s, cmd); err != nil {
		return err
	}
	fmt.Printf("weftd: %s done\n", cmd)
	return nil
}
