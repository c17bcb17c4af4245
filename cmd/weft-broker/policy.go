package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/weftmesh/weft/broker"
)

func cmdPolicy(args []string, data string, e env) error {
	fs := newFlags("weft-broker policy")
	dir, verb, pos, err := adminCommand("policy", args, data, fs)
	if err != nil {
		return err
	}
	switch verb {
	case "set":
		if err := wantArgs("policy set", pos, "ACCOUNT", "FILE"); err != nil {
			return err
		}
	case "get":
		if err := wantArgs("policy get", pos, "ACCOUNT"); err != nil {
			return err
		}
	default:
		return usagef("unknown policy subcommand %q", verb)
	}
	c, err := broker.NewAdminClient(dir)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if verb == "get" {
		p, err := c.Policy(ctx, pos[0])
		if err != nil {
			return err
		}
		src := p.Source
		if !strings.HasSuffix(src, "\n") {
			src += "\n"
		}
		_, err = fmt.Fprint(e.stdout, src)
		return err
	}
	src, err := os.ReadFile(pos[1])
	if err != nil {
		return fmt.Errorf("read policy: %w", err)
	}
	res, err := c.SetPolicy(ctx, broker.AdminPolicyRequest{Account: pos[0], Filename: pos[1], Source: string(src)})
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(e.stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(e.stdout, "policy of account %s set from %s\n", pos[0], pos[1])
	return nil
}
