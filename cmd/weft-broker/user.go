package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/weftmesh/weft/broker"
	"github.com/weftmesh/weft/broker/store"
)

func cmdUser(args []string, data string, e env) error {
	fs := newFlags("weft-broker user")
	pwFile := fs.String("password-file", "", "")
	dir, verb, pos, err := adminCommand("user", args, data, fs)
	if err != nil {
		return err
	}
	if verb != "add" {
		return usagef("unknown user subcommand %q", verb)
	}
	if err := wantArgs("user add", pos, "ACCOUNT", "EMAIL"); err != nil {
		return err
	}
	if *pwFile == "" {
		return usagef("user add needs --password-file FILE (or - for standard input)")
	}
	pw, err := readPassword(*pwFile, e.stdin)
	if err != nil {
		return err
	}
	c, err := broker.NewAdminClient(dir)
	if err != nil {
		return err
	}
	if err := c.AddUser(context.Background(), broker.AdminUserRequest{Account: pos[0], Email: pos[1], Password: pw}); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "added user %s to account %s\n", pos[1], pos[0])
	return nil
}

// readPassword reads a password from file ("-" is stdin), without one trailing newline.
func readPassword(file string, stdin io.Reader) (string, error) {
	var b []byte
	var err error
	if file == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, 4096))
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	pw := strings.TrimSuffix(string(b), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if len(pw) < store.MinPasswordLength {
		return "", fmt.Errorf("password is %d characters, the minimum is %d", len(pw), store.MinPasswordLength)
	}
	return pw, nil
}
