package main

import (
	"context"
	"fmt"

	"github.com/weftmesh/weft/broker"
)

func cmdAccount(args []string, data string, e env) error {
	dir, verb, pos, err := adminCommand("account", args, data, newFlags("weft-broker account"))
	if err != nil {
		return err
	}
	if verb != "create" {
		return usagef("unknown account subcommand %q", verb)
	}
	if err := wantArgs("account create", pos, "NAME"); err != nil {
		return err
	}
	c, err := broker.NewAdminClient(dir)
	if err != nil {
		return err
	}
	a, err := c.CreateAccount(context.Background(), pos[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "created account %s\n", a.Name)
	return nil
}
