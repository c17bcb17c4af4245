// Command weft is the command-line client of weftd: it brings the device onto the mesh,
// shows its state, pings peers and checks the network, all through weftd's local API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/weftmesh/weft/ipc"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: weft [--socket PATH] <command> [flags]

commands:
  up --broker URL [--ca FILE] [--auth-key KEY | --account A --email E [--password-file F]] [--name NAME]
  down
  status [--json]
  ping PEER [-c N]
  netcheck [--json]
  gateway advertise CIDR… | --none
  gateway list [--json]
  gateway use DEVICE [--route CIDR]
  gateway clear [DEVICE] [--route CIDR]
  vdev add NAME --lan-ip IP | list [--json] | remove NAME
  logout
  version`

// env is what every subcommand works with.
type env struct {
	socket string
	stdin  *os.File
	stdout io.Writer
	stderr io.Writer
}

func (e *env) client() *ipc.Client { return &ipc.Client{Path: e.socket} }

// usageError is a mistake in the command line: exit status 2 with the usage line.
type usageError struct {
	msg   string
	usage string
}

func (e *usageError) Error() string { return e.msg }

func usagef(usageLine, format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...), usage: usageLine}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr})
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, e *env) int {
	fs := flag.NewFlagSet("weft", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&e.socket, "socket", ipc.DefaultSocketPath(), "weftd's socket")
	if err := fs.Parse(args); err != nil {
		return fail(e, &usageError{msg: err.Error(), usage: usage})
	}
	if fs.NArg() == 0 {
		return fail(e, &usageError{msg: "no command given", usage: usage})
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	var err error
	switch cmd {
	case "up":
		err = cmdUp(ctx, e, rest)
	case "down":
		err = cmdDown(ctx, e, rest)
	case "status":
		err = cmdStatus(ctx, e, rest)
	case "ping":
		err = cmdPing(ctx, e, rest)
	case "netcheck":
		err = cmdNetcheck(ctx, e, rest)
	case "gateway":
		err = cmdGateway(ctx, e, rest)
	case "vdev":
		err = cmdVDev(ctx, e, rest)
	case "logout":
		err = cmdLogout(ctx, e, rest)
	case "version":
		err = cmdVersion(e, rest)
	case "help", "-h", "--help":
		fmt.Fprintln(e.stdout, usage)
	default:
		err = &usageError{msg: fmt.Sprintf("unknown command %q", cmd), usage: usage}
	}
	return fail(e, err)
}

// fail prints err as one line (plus the usage line for usage errors) and returns the
// exit status.
func fail(e *env, err error) int {
	if err == nil {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(e.stderr, "weft: %s\n%s\n", ue.msg, ue.usage)
		return 2
	}
	fmt.Fprintf(e.stderr, "weft: %s\n", strings.TrimSpace(err.Error()))
	return 1
}

// newFlags returns a flag set for a subcommand; it also takes --socket, so the global
// flag may come after the command too.
func newFlags(e *env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("weft "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&e.socket, "socket", e.socket, "weftd's socket")
	return fs
}

// parseArgs parses flags that may come before or after positional arguments and
// returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string, usageLine string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &usageError{msg: "help requested", usage: usageLine}
			}
			return nil, &usageError{msg: err.Error(), usage: usageLine}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// noArgs parses a subcommand that takes no positional arguments.
func noArgs(fs *flag.FlagSet, args []string, usageLine string) error {
	pos, err := parseArgs(fs, args, usageLine)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef(usageLine, "unexpected argument %q", pos[0])
	}
	return nil
}
