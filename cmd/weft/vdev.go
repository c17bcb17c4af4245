package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"text/tabwriter"
	"time"

	"github.com/weftmesh/weft/wire"
)

const vdevUsage = `usage: weft vdev add NAME --lan-ip IP
       weft vdev list [--json]
       weft vdev remove NAME`

// cmdVDev manages the virtual devices this device hosts as their gateway: LAN devices
// that cannot run weft, reachable from the mesh by a mesh address and name of their own.
func cmdVDev(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef(vdevUsage, "which vdev command? add, list or remove")
	}
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	switch args[0] {
	case "add":
		return cmdVDevAdd(ctx, e, args[1:])
	case "list":
		return cmdVDevList(ctx, e, args[1:])
	case "remove":
		return cmdVDevRemove(ctx, e, args[1:])
	}
	return usagef(vdevUsage, "unknown vdev command %q", args[0])
}

func cmdVDevAdd(ctx context.Context, e *env, args []string) error {
	const use = "usage: weft vdev add NAME --lan-ip IP"
	fs := newFlags(e, "vdev add")
	lanIP := fs.String("lan-ip", "", "the device's address on this device's LAN")
	pos, err := parseArgs(fs, args, use)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return usagef(use, "which name? give the virtual device a name like camera")
	case len(pos) > 1:
		return usagef(use, "unexpected argument %q", pos[1])
	case *lanIP == "":
		return usagef(use, "--lan-ip is missing: give the device's address on the LAN")
	}
	ip, err := netip.ParseAddr(*lanIP)
	if err != nil {
		return usagef(use, "--lan-ip %q is not an IP address", *lanIP)
	}
	if err := wire.ValidateLANIP(ip); err != nil {
		return usagef(use, "%v", err)
	}
	v, err := e.client().AddVirtualDevice(ctx, wire.VDevRequest{Name: pos[0], LANIP: ip})
	if err != nil {
		return err
	}
	name := v.Name
	if v.FQDN != "" {
		name = v.FQDN
	}
	fmt.Fprintf(e.stdout, "virtual device %s: mesh IP %s, LAN IP %s behind this device\n", name, v.Address, v.LANIP)
	return nil
}

func cmdVDevList(ctx context.Context, e *env, args []string) error {
	const use = "usage: weft vdev list [--json]"
	fs := newFlags(e, "vdev list")
	asJSON := fs.Bool("json", false, "print the list as JSON")
	if err := noArgs(fs, args, use); err != nil {
		return err
	}
	l, err := e.client().VirtualDevices(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(l)
	}
	if len(l.VDevs) == 0 {
		fmt.Fprintln(e.stdout, "no virtual devices behind this device")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMESH IP\tLAN IP\tFQDN")
	for _, v := range l.VDevs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Name, v.Address, v.LANIP, orDash(v.FQDN))
	}
	return tw.Flush()
}

func cmdVDevRemove(ctx context.Context, e *env, args []string) error {
	const use = "usage: weft vdev remove NAME"
	fs := newFlags(e, "vdev remove")
	pos, err := parseArgs(fs, args, use)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return usagef(use, "which virtual device? give its name")
	case len(pos) > 1:
		return usagef(use, "unexpected argument %q", pos[1])
	}
	if _, err := e.client().RemoveVirtualDevice(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "removed virtual device %s\n", pos[0])
	return nil
}
