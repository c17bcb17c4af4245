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
	admin := fs.Bool("admin", false, "")
	dir, verb, pos, err := adminCommand("user", args, data, fs)
	if err != nil {
		return err
	}
	switch verb {
	case "add":
		return userAdd(dir, pos, *pwFile, *admin, e)
	case "admin":
		if *pwFile != "" || *admin {
			return usagef("user admin takes no --password-file or --admin: say on or off")
		}
		return userAdmin(dir, pos, e)
	}
	return usagef("unknown user subcommand %q", verb)
}

func userAdd(dir string, pos []string, pwFile string, admin bool, e env) error {
	if err := wantArgs("user add", pos, "ACCOUNT", "EMAIL"); err != nil {
		return err
	}
	if pwFile == "" {
		return usagef("user add needs --password-file FILE (or - for standard input)")
	}
	pw, err := readPassword(pwFile, e.stdin)
	if err != nil {
		return err
	}
	c, err := broker.NewAdminClient(dir)
	if err != nil {
		return err
	}
	if err := c.AddUser(context.Background(), broker.AdminUserRequest{Account: pos[0], Email: pos[1], Password: pw, Admin: admin}); err != nil {
		return err
	}
	role := ""
	if admin {
		role = " as an administrator"
	}
	fmt.Fprintf(e.stdout, "added user %s to account %s%s\n", pos[1], pos[0], role)
	return nil
}

// userAdmin gives or takes away a user's administrator role: user admin ACCOUNT EMAIL on|off.
func userAdmin(dir string, pos []string, e env) error {
	if err := wantArgs("user admin", pos, "ACCOUNT", "EMAIL", "on|off"); err != nil {
		return err
	}
	var admin bool
	switch pos[2] {
	case "on":
		admin = true
	case "off":
	default:
		return usagef("user admin: say on or off, not %q", pos[2])
	}
	c, err := broker.NewAdminClient(dir)
	if err != nil {
		return err
	}
	if err := c.SetUserRole(context.Background(), broker.AdminUserRoleRequest{Account: pos[0], Email: pos[1], Admin: admin}); err != nil {
		return err
	}
	if admin {
		fmt.Fprintf(e.stdout, "%s is now an administrator of account %s\n", pos[1], pos[0])
	} else {
		fmt.Fprintf(e.stdout, "%s is no longer an administrator of account %s\n", pos[1], pos[0])
	}
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
