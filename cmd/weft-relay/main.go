// Command weft-relay forwards WireGuard packets between weft devices that cannot reach
// each other directly; it cannot read them.
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
	"syscall"
)

const usage = `usage:
  weft-relay serve --data DIR [--listen-udp HOST:PORT|off] [--listen-tls HOST:PORT|off]
                   [--tls-cert FILE --tls-key FILE] [--rate BYTES/s] [--burst BYTES]
                   [--max-clients N] [--lease DURATION] [--metrics HOST:PORT]
                   [--stats-interval DURATION] [--debug]
  weft-relay key --data DIR

serve runs the relay (UDP and TLS on :443 by default) until SIGINT or SIGTERM and
prints its public key first; key prints the public key. Both create DIR and the
relay's key in it when missing. Sizes take a K, M or G suffix (powers of 1000).
`

// env is what a command may touch, so tests can run commands in-process.
type env struct {
	ctx            context.Context // ends serve
	stdout, stderr io.Writer
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(os.Args[1:], env{ctx: ctx, stdout: os.Stdout, stderr: os.Stderr})
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit status.
func run(args []string, e env) int {
	err := dispatch(args, e)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(e.stdout, usage)
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "weft-relay: %s (see weft-relay --help)\n", oneLine(err))
		return 2
	default:
		fmt.Fprintf(e.stderr, "weft-relay: %s\n", oneLine(err))
		return 1
	}
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

func dispatch(args []string, e env) error {
	if len(args) == 0 {
		return usagef("no command given")
	}
	switch args[0] {
	case "serve":
		return cmdServe(args[1:], e)
	case "key":
		return cmdKey(args[1:], e)
	case "help", "-h", "-help", "--help":
		return flag.ErrHelp
	default:
		return usagef("unknown command %q", args[0])
	}
}

// newFlags returns a flag set that reports errors to the caller instead of printing them.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses args with fs and refuses positional arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("%s takes no arguments, got %q", fs.Name(), strings.Join(fs.Args(), " "))
	}
	return nil
}
