// Command weft-tray shows weft in the system tray (the menu bar on macOS): the connection,
// this device and the others, login and logout, all through weftd's local API.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/weftmesh/weft/ipc"
	"github.com/weftmesh/weft/tray"
)

const usage = `usage: weft-tray [--socket PATH] [--broker URL [--ca FILE]] [--log-level LEVEL]
       weft-tray --install-autostart [--socket PATH] [--broker URL [--ca FILE]]
       weft-tray --remove-autostart

--broker is where "Log in…" signs in when weftd knows no broker yet.`

// options is the parsed command line.
type options struct {
	socket, broker, caFile, logLevel string
	install, remove                  bool
}

func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("weft-tray", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.socket, "socket", ipc.DefaultSocketPath(), "weftd's socket (named pipe on Windows)")
	fs.StringVar(&o.broker, "broker", "", "broker to log in at when weftd knows none, https://HOST[:PORT]")
	fs.StringVar(&o.caFile, "ca", "", "PEM file of the CA that signed --broker's certificate")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&o.install, "install-autostart", false, "start weft-tray at login, with these flags, and exit")
	fs.BoolVar(&o.remove, "remove-autostart", false, "stop starting weft-tray at login, and exit")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.install && o.remove:
		return o, errors.New("--install-autostart and --remove-autostart exclude each other")
	case o.caFile != "" && o.broker == "":
		return o, errors.New("--ca goes with --broker")
	case o.broker != "" && !strings.HasPrefix(o.broker, "https://"):
		return o, fmt.Errorf("--broker %q must start with https://", o.broker)
	}
	return o, nil
}

func main() {
	o, err := parse(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "weft-tray: %v\n%s\n", err, usage)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "weft-tray: %v\n", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.install || o.remove {
		return autostart(o)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	var caPEM string
	if o.caFile != "" {
		b, err := os.ReadFile(o.caFile)
		if err != nil {
			return fmt.Errorf("read --ca: %w", err)
		}
		caPEM = string(b)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		tray.Stop()
	}()
	log.Info("weft-tray starting", "socket", o.socket)
	weftd := &ipc.Client{Path: o.socket}
	return tray.RunSystray(func(view tray.View, quit func()) *tray.App {
		return tray.NewApp(tray.AppConfig{
			API:         weftd,
			Gateways:    tray.LocalGateways{Local: weftd},
			Account:     &tray.AccountClient{Broker: weftd.Broker},
			Desktop:     tray.SystemDesktop{},
			Sessions:    tray.Keyring{},
			View:        view,
			Logger:      log,
			LoginBroker: o.broker,
			LoginCA:     caPEM,
			Quit:        quit,
		})
	})
}

// autostart installs or removes the login item that starts this binary with o's flags.
func autostart(o options) error {
	if o.remove {
		where, err := tray.RemoveAutostart()
		if err != nil {
			return err
		}
		fmt.Printf("weft-tray no longer starts at login (removed %s)\n", where)
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this program: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return fmt.Errorf("find this program: %w", err)
	}
	args := []string{exe}
	if o.socket != ipc.DefaultSocketPath() {
		args = append(args, "--socket", o.socket)
	}
	if o.broker != "" {
		args = append(args, "--broker", o.broker)
	}
	if o.caFile != "" {
		ca, err := filepath.Abs(o.caFile)
		if err != nil {
			return err
		}
		args = append(args, "--ca", ca)
	}
	where, err := tray.InstallAutostart(args)
	if err != nil {
		return err
	}
	fmt.Printf("weft-tray starts at login now (%s)\n", where)
	return nil
}
