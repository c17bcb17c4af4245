package platform

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"sync"
)

// pfGateway loads the gateway's rules into a pf anchor of its own with pfctl, which
// replaces the anchor's rules and tables in one transaction, and switches IPv4
// forwarding with sysctl.
type pfGateway struct {
	log *slog.Logger

	mu         sync.Mutex // serialises Apply and Close and guards the fields below
	checked    bool       // the main ruleset evaluates our anchor
	token      string     // reference from "pfctl -E", released when the rules go; "" if none
	forwardWas string     // net.inet.ip.forwarding before weft turned it on; "" when weft did not
	closed     bool
}

func newGateway(log *slog.Logger) (Gateway, error) {
	for _, tool := range []string{"pfctl", "sysctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("gateway: %s not found: %w", tool, err)
		}
	}
	return &pfGateway{log: log}, nil
}

func (g *pfGateway) Apply(cfg GatewayConfig) error {
	c, err := checkGateway(cfg)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errors.New("gateway: apply after close")
	}
	if c.empty() {
		return g.remove()
	}
	egress, err := egressInterfaces(c.TunnelIface)
	if err != nil {
		return err
	}
	rules, err := pfGatewayRules(c, egress)
	if err != nil {
		return err
	}
	if !g.checked {
		// Rules in anchors the main ruleset never consults would be a silent no-op.
		out, err := pfctl(nil, "-s", "nat")
		if err != nil {
			return err
		}
		for _, kind := range []string{"nat-anchor", "rdr-anchor"} {
			if !regexp.MustCompile(`(?m)^\s*` + kind + ` "com\.apple/\*"`).MatchString(out) {
				return fmt.Errorf("gateway: the main pf ruleset has no %s \"com.apple/*\" (see /etc/pf.conf), so weft's NAT rules would have no effect", kind)
			}
		}
		g.checked = true
	}
	if _, err := pfctl(strings.NewReader(rules), "-a", pfGatewayAnchor, "-f", "-"); err != nil {
		return err
	}
	if g.token == "" {
		out, err := pfctl(nil, "-E")
		if err != nil {
			return err
		}
		m := regexp.MustCompile(`Token : (\d+)`).FindStringSubmatch(out)
		if m == nil {
			return fmt.Errorf("gateway: pfctl -E gave no token: %q", out)
		}
		g.token = m[1]
	}
	// Forwarding goes on only once the rules that limit it are in force.
	was, err := sysctlValue("net.inet.ip.forwarding")
	if err != nil {
		return err
	}
	if was != "1" {
		if out, err := exec.Command("sysctl", "-w", "net.inet.ip.forwarding=1").CombinedOutput(); err != nil {
			return fmt.Errorf("gateway: turn IPv4 forwarding on: %w: %s", err, strings.TrimSpace(string(out)))
		}
		if g.forwardWas == "" {
			g.forwardWas = was
		}
	}
	g.log.Info("gateway rules applied", "anchor", pfGatewayAnchor, "iface", c.TunnelIface,
		"egress", egress, "routes", len(c.Routes), "virtual_devices", len(c.Virtual))
	return nil
}

func (g *pfGateway) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	if err := g.remove(); err != nil {
		return err
	}
	g.closed = true
	return nil
}

// remove empties the anchor, releases pf and restores forwarding. Flows already running
// keep their pf states, as on every pf reload.
func (g *pfGateway) remove() error {
	if _, err := pfctl(strings.NewReader("# weft gateway off\n"), "-a", pfGatewayAnchor, "-f", "-"); err != nil {
		return err
	}
	if g.token != "" {
		if _, err := pfctl(nil, "-X", g.token); err != nil {
			return err
		}
		g.token = ""
	}
	if g.forwardWas != "" {
		if out, err := exec.Command("sysctl", "-w", "net.inet.ip.forwarding="+g.forwardWas).CombinedOutput(); err != nil {
			return fmt.Errorf("gateway: restore IPv4 forwarding: %w: %s", err, strings.TrimSpace(string(out)))
		}
		g.forwardWas = ""
	}
	g.log.Info("gateway rules removed", "anchor", pfGatewayAnchor)
	return nil
}

func sysctlValue(name string) (string, error) {
	out, err := exec.Command("sysctl", "-n", name).Output()
	if err != nil {
		return "", fmt.Errorf("gateway: sysctl %s: %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// egressInterfaces lists the interfaces that are up, not loopback and not the tunnel, and
// have an IPv4 address: where forwarded traffic may leave.
func egressInterfaces(tunnel string) ([]string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("gateway: list interfaces: %w", err)
	}
	var out []string
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || ifc.Name == tunnel || checkIfaceName(ifc.Name) != nil {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
				out = append(out, ifc.Name)
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("gateway: no interface with an IPv4 address to forward through")
	}
	return out, nil
}
