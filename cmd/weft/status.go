package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/weftmesh/weft/wire"
)

const statusUsage = "usage: weft status [--json]"

func cmdStatus(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "status")
	asJSON := fs.Bool("json", false, "print the full status as JSON")
	if err := noArgs(fs, args, statusUsage); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	st, err := e.client().Status(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printStatus(e.stdout, st, time.Now())
	return nil
}

func printStatus(w io.Writer, st wire.Status, now time.Time) {
	switch st.State {
	case wire.StateRevoked:
		fmt.Fprintf(w, "REMOVED: the broker removed this device from the mesh: %s\n", orDash(st.Reason))
		if st.LoginURL != "" {
			fmt.Fprintf(w, "To join again, open: %s\n", st.LoginURL)
		}
		fmt.Fprintln(w, "To join again: weft up (and sign in in the browser) or weft up --auth-key KEY; or weft logout to forget it.")
		return
	case wire.StateNeedsLogin:
		switch {
		case st.LoginURL != "":
			fmt.Fprintf(w, "Not logged in yet. To log in, open: %s\n", st.LoginURL)
		case st.LoginError != "":
			fmt.Fprintf(w, "Not logged in: the last login failed: %s\n", st.LoginError)
			fmt.Fprintln(w, "Try again with: weft up --broker URL")
		default:
			fmt.Fprintln(w, "Not logged in. Join a mesh with: weft up --broker URL (then sign in in the browser), or add --auth-key KEY")
		}
		return
	}
	name, addr := "-", "-"
	if st.Self != nil {
		name, addr = st.Self.Name, st.Self.Address.String()
		if st.Self.FQDN != "" {
			name = st.Self.FQDN
		}
	}
	fmt.Fprintf(w, "%s  %s  %s\n", name, addr, st.State)
	if st.State == wire.StateStopped {
		if st.Reason != "" {
			fmt.Fprintf(w, "tunnel: %s\n", st.Reason)
		}
		fmt.Fprintln(w, "The tunnel is down; weft up brings it back.")
		return
	}
	switch {
	case st.BrokerConnected:
		fmt.Fprintf(w, "broker: %s (connected)\n", st.Broker)
	case st.BrokerError != "":
		fmt.Fprintf(w, "broker: %s (not connected: %s)\n", st.Broker, st.BrokerError)
	default:
		fmt.Fprintf(w, "broker: %s (connecting)\n", st.Broker)
	}
	if st.Interface != "" {
		fmt.Fprintf(w, "tunnel: %s, UDP port %d", st.Interface, st.ListenPort)
		if st.WireGuard != "" {
			fmt.Fprintf(w, ", %s WireGuard", st.WireGuard)
		}
		fmt.Fprintln(w)
	}
	if pm := st.PortMapping; pm != nil && pm.External.IsValid() {
		fmt.Fprintf(w, "port mapping: %s\n", portMapText(pm))
	}
	peers := tunnelPeers(st.Peers)
	if len(peers) == 0 {
		fmt.Fprintln(w, "no peers")
	} else {
		printPeers(w, peers, now)
	}
	printGateways(w, st) // status_gateways.go
}

// printPeers prints the table of peers with a tunnel, and why any is not on a direct path.
func printPeers(w io.Writer, peers []wire.PeerStatus, now time.Time) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMESH IP\tPATH\tENDPOINT\tRTT\tHANDSHAKE\tRX\tTX\tONLINE")
	for _, p := range peers {
		endpoint := "-"
		if p.Endpoint.IsValid() {
			endpoint = p.Endpoint.String()
		}
		online := "no"
		if p.Online {
			online = "yes"
		}
		rtt := "-"
		if p.RTT > 0 {
			rtt = fmt.Sprintf("%.1fms", float64(p.RTT)/float64(time.Millisecond))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Address, orDash(p.Path), endpoint,
			rtt, ago(p.LastHandshake, now), bytesHuman(p.RxBytes), bytesHuman(p.TxBytes), online)
	}
	tw.Flush()
	// Say why a peer is not on a direct path, as users of other meshes have to guess.
	for _, p := range peers {
		if p.PathReason != "" && !strings.HasPrefix(p.Path, wire.PathDirect) {
			fmt.Fprintf(w, "%s: %s (%s)\n", p.Name, orDash(p.Path), p.PathReason)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ago renders how long ago t was, coarsely: "12s ago", "3m ago", "5h ago", "2d ago".
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}

// bytesHuman renders a byte count with binary units: "0 B", "1.5 KiB", "3.2 MiB".
func bytesHuman(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
