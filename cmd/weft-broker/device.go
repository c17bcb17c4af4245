package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/weftmesh/weft/broker"
)

func cmdDevice(args []string, data string, e env) error {
	fs := newFlags("weft-broker device")
	asJSON := fs.Bool("json", false, "")
	dir, verb, pos, err := adminCommand("device", args, data, fs)
	if err != nil {
		return err
	}
	switch verb {
	case "list":
		if err := wantArgs("device list", pos, "ACCOUNT"); err != nil {
			return err
		}
	case "remove":
		if err := wantArgs("device remove", pos, "ACCOUNT", "DEVICE"); err != nil {
			return err
		}
	default:
		return usagef("unknown device subcommand %q", verb)
	}
	c, err := broker.NewAdminClient(dir)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if verb == "remove" {
		d, err := c.RemoveDevice(ctx, pos[0], pos[1])
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "removed device %s (%s) from account %s\n", d.Name, d.Address, d.Account)
		return nil
	}
	devs, err := c.Devices(ctx, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(devs)
	}
	return printDevices(e.stdout, devs, time.Now())
}

func printDevices(w io.Writer, devs []broker.AdminDevice, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tONLINE\tLAST-SEEN\tPUBLIC-KEY")
	for _, d := range devs {
		online, seen := "no", ago(d.LastSeen, now)
		if d.Online {
			online, seen = "yes", "now"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Name, d.Address, online, seen, d.PublicKey)
	}
	return tw.Flush()
}

// ago renders how long ago t was, coarsely.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	default:
		return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
	}
}
