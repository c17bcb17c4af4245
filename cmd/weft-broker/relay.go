package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/weftmesh/weft/broker"
	"github.com/weftmesh/weft/wire"
)

func cmdRelay(args []string, data string, e env) error {
	fs := newFlags("weft-broker relay")
	global := fs.Bool("global", false, "")
	udp := fs.String("udp", "", "")
	tlsAddr := fs.String("tls", "", "")
	keyStr := fs.String("key", "", "")
	asJSON := fs.Bool("json", false, "")
	dir, verb, pos, err := adminCommand("relay", args, data, fs)
	if err != nil {
		return err
	}
	if verb != "add" && (*udp != "" || *tlsAddr != "" || *keyStr != "") {
		return usagef("--udp, --tls and --key are for relay add")
	}
	// scope returns the account and relay name from ACCOUNT NAME, or NAME with --global.
	scope := func(cmd string) (account, name string, err error) {
		if *global {
			if err := wantArgs(cmd+" --global", pos, "NAME"); err != nil {
				return "", "", err
			}
			return "", pos[0], nil
		}
		if err := wantArgs(cmd, pos, "ACCOUNT", "NAME"); err != nil {
			return "", "", err
		}
		return pos[0], pos[1], nil
	}
	ctx := context.Background()
	switch verb {
	case "add":
		account, name, err := scope("relay add")
		if err != nil {
			return err
		}
		if *keyStr == "" {
			return usagef("relay add needs --key PUBKEY, the relay's public key")
		}
		key, err := wire.ParseKey(*keyStr)
		if err != nil {
			return usagef("--key: %v", err)
		}
		if *udp == "" && *tlsAddr == "" {
			return usagef("relay add needs --udp HOST:PORT, --tls HOST:PORT or both")
		}
		c, err := broker.NewAdminClient(dir)
		if err != nil {
			return err
		}
		r, err := c.AddRelay(ctx, broker.AdminRelayRequest{Account: account, Global: *global, Name: name,
			UDP: *udp, TLS: *tlsAddr, PublicKey: key})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "added relay %s %s\n", r.Name, relayScope(r))
		return nil
	case "remove":
		account, name, err := scope("relay remove")
		if err != nil {
			return err
		}
		c, err := broker.NewAdminClient(dir)
		if err != nil {
			return err
		}
		r, err := c.RemoveRelay(ctx, broker.AdminRemoveRelayRequest{Account: account, Global: *global, Name: name})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "removed relay %s %s\n", r.Name, relayScope(r))
		return nil
	case "list":
		if *global || len(pos) > 1 {
			return usagef("relay list takes at most one argument, ACCOUNT, and no --global")
		}
		account := ""
		if len(pos) == 1 {
			account = pos[0]
		}
		c, err := broker.NewAdminClient(dir)
		if err != nil {
			return err
		}
		rs, err := c.Relays(ctx, account)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(rs)
		}
		return printRelays(e.stdout, rs)
	default:
		return usagef("unknown relay subcommand %q", verb)
	}
}

func relayScope(r broker.AdminRelay) string {
	switch {
	case r.Embedded:
		return "(embedded in the broker, for every account)"
	case r.Account == "":
		return "(global, for every account)"
	default:
		return "of account " + r.Account
	}
}

func printRelays(w io.Writer, rs []broker.AdminRelay) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tACCOUNT\tUDP\tTLS\tPUBLIC-KEY")
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, r := range rs {
		account := r.Account
		switch {
		case r.Embedded:
			account = "(embedded)"
		case account == "":
			account = "(global)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, account, dash(r.UDP), dash(r.TLS), r.PublicKey)
	}
	return tw.Flush()
}
