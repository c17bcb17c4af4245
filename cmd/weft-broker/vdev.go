package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/weftmesh/weft/broker"
)

func cmdVDev(args []string, data string, e env) error {
	fs := newFlags("weft-broker vdev")
	asJSON := fs.Bool("json", false, "")
	dir, verb, pos, err := adminCommand("vdev", args, data, fs)
	if err != nil {
		return err
	}
	switch verb {
	case "list":
		if err := wantArgs("vdev list", pos, "ACCOUNT"); err != nil {
			return err
		}
	case "remove":
		if err := wantArgs("vdev remove", pos, "ACCOUNT", "NAME"); err != nil {
			return err
		}
		if *asJSON {
			return usagef("--json is for vdev list")
		}
	default:
		return usagef("unknown vdev subcommand %q", verb)
	}
	c, err := broker.NewAdminClient(dir)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if verb == "remove" {
		v, err := c.RemoveVirtualDevice(ctx, pos[0], pos[1])
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "removed virtual device %s (%s, LAN %s behind %s) from account %s\n",
			v.Name, v.Address, v.LANIP, v.GatewayName, v.Account)
		return nil
	}
	vs, err := c.VirtualDevices(ctx, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(vs)
	}
	return printVDevs(e.stdout, vs)
}

func printVDevs(w io.Writer, vs []broker.AdminVDev) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tLAN-IP\tGATEWAY\tONLINE")
	for _, v := range vs {
		online := "no"
		if v.Online {
			online = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Name, v.Address, v.LANIP, v.GatewayName, online)
	}
	return tw.Flush()
}
