package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/weftmesh/weft/wire"
	"golang.org/x/term"
)

const upUsage = "usage: weft up --broker URL [--ca FILE] [--auth-key KEY | --account A --email E [--password-file F]] [--name NAME]\n" +
	"       weft up            (again, after weft down)\n" +
	"Without --auth-key or --account, weft up prints a one-time login URL: sign in there in a browser."

func cmdUp(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "up")
	var req wire.UpRequest
	var caFile, passwordFile string
	fs.StringVar(&req.Broker, "broker", "", "broker URL, https://HOST[:PORT]")
	fs.StringVar(&caFile, "ca", "", "PEM file of the CA that signed the broker's certificate")
	fs.StringVar(&req.AuthKey, "auth-key", "", "auth key from the broker's admin")
	fs.StringVar(&req.Account, "account", "", "account to join")
	fs.StringVar(&req.Email, "email", "", "your e-mail address in the account")
	fs.StringVar(&passwordFile, "password-file", "", "file holding your password (else you are asked)")
	fs.StringVar(&req.Name, "name", "", "device name (default: this host's name)")
	if err := noArgs(fs, args, upUsage); err != nil {
		return err
	}
	switch {
	case req.AuthKey != "" && (req.Account != "" || req.Email != ""):
		return usagef(upUsage, "give --auth-key or --account and --email, not both")
	case (req.Account != "") != (req.Email != ""):
		return usagef(upUsage, "--account and --email go together")
	case passwordFile != "" && req.Email == "":
		return usagef(upUsage, "--password-file goes with --account and --email")
	}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("read CA file: %w", err)
		}
		req.CAPEM = string(b)
	}
	if req.Email != "" {
		pw, err := readPassword(e, req.Email, passwordFile)
		if err != nil {
			return err
		}
		req.Password = pw
	}

	// Registration may wait on the broker; leave it room.
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	st, err := e.client().Up(ctx, req)
	if err != nil {
		return err
	}
	if st.LoginURL != "" {
		cancel()
		if st, err = awaitLogin(e, st); err != nil {
			return err
		}
		ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
	}
	st = awaitMap(ctx, e, st)
	self := "this device"
	if st.Self != nil {
		self = fmt.Sprintf("%s (%s)", st.Self.Name, st.Self.Address)
	}
	fmt.Fprintf(e.stdout, "weft is up: %s, %s, %d peer(s)\n", self, st.State, len(st.Peers))
	return nil
}

// readPassword reads the password from file (as this user, so file permissions are
// the user's) or asks for it on the terminal without echo.
func readPassword(e *env, email, file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read password file: %w", err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return "", fmt.Errorf("password file %s is empty", file)
		}
		return pw, nil
	}
	fd := int(e.stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", errors.New("no terminal to ask for the password on: give --password-file FILE")
	}
	fmt.Fprintf(e.stderr, "Password for %s: ", email)
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(e.stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if len(b) == 0 {
		return "", errors.New("empty password")
	}
	return string(b), nil
}

// awaitMap gives weftd a few seconds to get its first map from the broker, so the
// summary shows the peers; a broker that does not answer by then is no error.
func awaitMap(ctx context.Context, e *env, st wire.Status) wire.Status {
	deadline := time.Now().Add(5 * time.Second)
	for st.State == wire.StateStarting && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return st
		case <-time.After(200 * time.Millisecond):
		}
		next, err := e.client().Status(ctx)
		if err != nil {
			return st
		}
		st = next
	}
	return st
}
