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

const netcheckUsage = "usage: weft netcheck [--json]"

func cmdNetcheck(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "netcheck")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := noArgs(fs, args, netcheckUsage); err != nil {
		return err
	}
	// weftd's probes take at most wire.NetcheckTimeout; the rest is for a busy daemon.
	ctx, cancel := context.WithTimeout(ctx, wire.NetcheckTimeout+15*time.Second)
	defer cancel()
	n, err := e.client().Netcheck(ctx)
	if err != nil {
		return fmt.Errorf("netcheck: %w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(n)
	}
	printNetcheck(e.stdout, n)
	return nil
}

// printNetcheck prints the report for people, one finding per line.
func printNetcheck(w io.Writer, n wire.Netcheck) {
	fmt.Fprintln(w, "Report:")
	weftd := "weftd: " + n.State
	if n.Broker != "" {
		weftd += ", broker " + n.Broker
	}
	fmt.Fprintf(w, "  * %s\n", weftd)
	fmt.Fprintf(w, "  * UDP: %s\n", udpText(n))
	if len(n.STUN) > 0 {
		from := "WireGuard's socket"
		if n.Socket == wire.SocketProbe {
			from = "a temporary socket"
		}
		if n.LocalPort != 0 {
			from += fmt.Sprintf(", port %d", n.LocalPort)
		}
		fmt.Fprintf(w, "  * Public address as STUN servers see it (from %s):\n", from)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, s := range n.STUN {
			seen := s.Error
			if s.Mapped.IsValid() {
				seen = s.Mapped.String()
			}
			fmt.Fprintf(tw, "      %s\t%s\n", s.Server, seen)
		}
		tw.Flush()
	}
	if n.Mapping != "" {
		fmt.Fprintf(w, "  * Mapping: %s\n", mappingText(n.Mapping))
	}
	if n.PortPreserved != nil {
		kept := "no"
		if *n.PortPreserved {
			kept = "yes"
		}
		fmt.Fprintf(w, "  * Port preserved: %s (local port %d)\n", kept, n.LocalPort)
	}
	if n.PortMapping != nil {
		fmt.Fprintf(w, "  * Port mapping: %s\n", portMapText(n.PortMapping))
	}
	lan := make([]string, len(n.LAN))
	for i, a := range n.LAN {
		lan[i] = a.String()
	}
	if len(lan) == 0 {
		lan = []string{"none"}
	}
	fmt.Fprintf(w, "  * LAN addresses: %s\n", strings.Join(lan, ", "))
	if len(n.Relays) > 0 {
		pref := "none answered"
		if n.PreferredRelay != "" {
			pref = n.PreferredRelay
		}
		fmt.Fprintf(w, "  * Relays (preferred: %s):\n", pref)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, r := range n.Relays {
			fmt.Fprintf(tw, "      %s\tUDP %s\tTLS %s\n", r.Name, relayText(r.UDP), relayText(r.TLS))
		}
		tw.Flush()
	}
	for _, note := range n.Notes {
		fmt.Fprintf(w, "  * Note: %s\n", note)
	}
}

func udpText(n wire.Netcheck) string {
	switch n.UDP {
	case wire.UDPOK:
		return "ok"
	case wire.UDPBlocked:
		for _, r := range n.Relays {
			if r.TLS != nil && r.TLS.OK {
				return "blocked (no STUN server or relay answered over UDP; the relay over TLS carries the traffic)"
			}
		}
		return "blocked (no STUN server or relay answered over UDP)"
	}
	return "not checked (nothing to ask)"
}

// portMapText renders the port mapping on the gateway: the public address peers are told,
// or why there is none.
func portMapText(p *wire.PortMapping) string {
	switch {
	case p.External.IsValid():
		return fmt.Sprintf("%s (%s on gateway %s, to port %d; lifetime %s)", p.External, p.Protocol, p.Gateway,
			p.Internal.Port(), p.Lifetime)
	case p.Error != "":
		return "none (" + p.Error + ")"
	}
	return "none yet (asking the gateway)"
}

func mappingText(m string) string {
	switch m {
	case wire.MappingNone:
		return "no NAT (the servers see this host's own address)"
	case wire.MappingIndependent:
		return "endpoint-independent (one public address and port for every destination: hole punching works)"
	case wire.MappingVaries:
		return "varies by destination (symmetric NAT: direct paths need birthday probing, which works with peers behind other kinds of NAT; between two such NATs the relay carries)"
	case wire.MappingUnknown:
		return "unknown (only one STUN server answered)"
	}
	return m
}

// relayText renders one transport's probe: its latency, or why it is unreachable.
func relayText(p *wire.RelayProbe) string {
	switch {
	case p == nil:
		return "-"
	case !p.OK:
		return "unreachable (" + p.Error + ")"
	case p.Latency == 0:
		return "ok (no ping answer)"
	}
	return fmt.Sprintf("%.1f ms", float64(p.Latency)/float64(time.Millisecond))
}
