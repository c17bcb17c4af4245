package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/broker"
)

// durationFlag is a time.Duration that also takes whole days, such as "7d".
type durationFlag time.Duration

func (d *durationFlag) String() string { return time.Duration(*d).String() }

func (d *durationFlag) Set(s string) error {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return fmt.Errorf("%q is not a number of days", s)
		}
		*d = durationFlag(time.Duration(n) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 1h30m or 7d", s)
	}
	if v < 0 {
		return fmt.Errorf("%q is negative", s)
	}
	*d = durationFlag(v)
	return nil
}

func cmdAuthKey(args []string, data string, e env) error {
	fs := newFlags("weft-broker authkey")
	reusable := fs.Bool("reusable", false, "")
	var expires durationFlag
	fs.Var(&expires, "expires", "")
	dir, verb, pos, err := adminCommand("authkey", args, data, fs)
	if err != nil {
		return err
	}
	if verb != "create" {
		return usagef("unknown authkey subcommand %q", verb)
	}
	if err := wantArgs("authkey create", pos, "ACCOUNT"); err != nil {
		return err
	}
	c, err := broker.NewAdminClient(dir)
	if err != nil {
		return err
	}
	key, err := c.CreateAuthKey(context.Background(), broker.AdminAuthKeyRequest{
		Account: pos[0], Reusable: *reusable, Expires: time.Duration(expires)})
	if err != nil {
		return err
	}
	// Only the key, so scripts can capture it.
	fmt.Fprintln(e.stdout, key)
	return nil
}
