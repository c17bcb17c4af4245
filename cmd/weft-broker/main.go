// Command weft-broker runs the weft broker and administers a running one.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

const usage = `usage:
  weft-broker serve --data DIR [--listen HOST:PORT] [--domain ZONE]
                    [--tls-cert FILE --tls-key FILE] [--tls-san NAME,...]
                    [--dns HOST:PORT [--dns-addr IP,...]]
                    [--stun HOST:PORT[,HOST:PORT2]] [--public-addr IP,...]
                    [--relay-udp HOST:PORT [--relay-tls HOST:PORT]]
  weft-broker account create NAME --data DIR
  weft-broker user add ACCOUNT EMAIL --password-file FILE|- [--admin] --data DIR
  weft-broker user admin ACCOUNT EMAIL on|off --data DIR
  weft-broker authkey create ACCOUNT [--reusable] [--expires DURATION] --data DIR
  weft-broker device list ACCOUNT [--json] --data DIR
  weft-broker device remove ACCOUNT DEVICE --data DIR
  weft-broker policy set ACCOUNT FILE --data DIR
  weft-broker policy get ACCOUNT --data DIR
  weft-broker relay add ACCOUNT NAME [--udp HOST:PORT] [--tls HOST:PORT] --key PUBKEY --data DIR
  weft-broker relay add --global NAME [--udp HOST:PORT] [--tls HOST:PORT] --key PUBKEY --data DIR
  weft-broker relay list [ACCOUNT] [--json] --data DIR
  weft-broker relay remove ACCOUNT NAME --data DIR
  weft-broker relay remove --global NAME --data DIR
  weft-broker route list ACCOUNT [--json] --data DIR
  weft-broker route approve ACCOUNT DEVICE CIDR --data DIR
  weft-broker route unapprove ACCOUNT DEVICE CIDR --data DIR
  weft-broker vdev list ACCOUNT [--json] --data DIR
  weft-broker vdev remove ACCOUNT NAME --data DIR
  weft-broker session list ACCOUNT [EMAIL] [--json] --data DIR
  weft-broker session revoke ACCOUNT SESSION-ID --data DIR
  weft-broker session revoke ACCOUNT --user EMAIL --data DIR

Flags may come before or after the other arguments. Admin commands act on the
broker running on DIR through DIR/admin.sock.
`

// env is what a command may touch, so tests can run commands in-process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func main() {
	os.Exit(run(os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}))
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
		fmt.Fprintf(e.stderr, "weft-broker: %s (see weft-broker --help)\n", oneLine(err))
		return 2
	default:
		fmt.Fprintf(e.stderr, "weft-broker: %s\n", oneLine(err))
		return 1
	}
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func dispatch(args []string, e env) error {
	// Only --data may come before the command.
	top := newFlags("weft-broker")
	data := top.String("data", "", "")
	if err := top.Parse(args); err != nil {
		return err
	}
	rest := top.Args()
	if len(rest) == 0 {
		return usagef("no command given")
	}
	cmd, rest := rest[0], rest[1:]
	switch cmd {
	case "serve":
		return cmdServe(rest, *data, e)
	case "account":
		return cmdAccount(rest, *data, e)
	case "user":
		return cmdUser(rest, *data, e)
	case "authkey":
		return cmdAuthKey(rest, *data, e)
	case "device":
		return cmdDevice(rest, *data, e)
	case "policy":
		return cmdPolicy(rest, *data, e)
	case "relay":
		return cmdRelay(rest, *data, e)
	case "route":
		return cmdRoute(rest, *data, e)
	case "vdev":
		return cmdVDev(rest, *data, e)
	case "session":
		return cmdSession(rest, *data, e)
	case "help":
		return flag.ErrHelp
	default:
		return usagef("unknown command %q", cmd)
	}
}

// newFlags returns a flag set that reports errors to the caller instead of printing them.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseInterleaved parses args with fs, letting flags and positional arguments mix,
// and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// adminCommand parses an admin command group's arguments with fs (which holds the
// group's own flags) plus --data, and returns the data directory, the verb and its arguments.
func adminCommand(group string, args []string, data string, fs *flag.FlagSet) (dataDir, verb string, pos []string, err error) {
	d := fs.String("data", data, "")
	pos, err = parseInterleaved(fs, args)
	if err != nil {
		return "", "", nil, err
	}
	if len(pos) == 0 {
		return "", "", nil, usagef("%s: no subcommand given", group)
	}
	if *d == "" {
		return "", "", nil, usagef("--data DIR is required")
	}
	return *d, pos[0], pos[1:], nil
}

// wantArgs checks the number of positional arguments of a command.
func wantArgs(cmd string, got []string, names ...string) error {
	if len(got) != len(names) {
		return usagef("%s takes %d argument(s): %s; got %d", cmd, len(names), strings.Join(names, " "), len(got))
	}
	return nil
}
