package platform

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"sync"

	"github.com/weftmesh/weft/wire"
)

// pfFirewall loads weft's rules into a pf anchor of its own with pfctl, which replaces
// the anchor's rules and tables in one transaction.
type pfFirewall struct {
	log *slog.Logger

	mu      sync.Mutex // serialises Apply, SetForwarding and Close and guards the fields below
	checked bool       // the main ruleset evaluates our anchor
	fwd     Forwarding // what is left to the gateway's anchor as forwarded traffic
	last    *pfApplied // the last successful Apply; nil before one
	token   string     // reference from "pfctl -E", released by Close; empty if none
	closed  bool
}

func newFirewall(log *slog.Logger) (Firewall, error) {
	if _, err := exec.LookPath("pfctl"); err != nil {
		return nil, fmt.Errorf("firewall: pfctl not found: %w", err)
	}
	return &pfFirewall{log: log}, nil
}

// pfApplied is what an Apply put in force, for SetForwarding to load again.
type pfApplied struct {
	iface  string
	self   netip.Addr
	filter wire.PacketFilter
}

func (f *pfFirewall) Apply(iface string, self netip.Addr, filter wire.PacketFilter) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applyLocked(pfApplied{iface, self, filter}, f.fwd)
}

func (f *pfFirewall) SetForwarding(fwd Forwarding) error {
	if _, err := checkForwarding(fwd); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errors.New("firewall: set forwarding after close")
	}
	if f.last == nil {
		f.fwd = fwd
		return nil
	}
	return f.applyLocked(*f.last, fwd)
}

// applyLocked loads the anchor for a and fwd. The caller holds mu.
func (f *pfFirewall) applyLocked(a pfApplied, fwd Forwarding) error {
	iface, filter := a.iface, a.filter
	rules, err := pfRules(iface, a.self, filter, fwd)
	if err != nil {
		return err
	}
	if f.closed {
		return errors.New("firewall: apply after close")
	}
	if !f.checked {
		// Rules in an anchor the main ruleset never consults would be a silent no-op.
		out, err := pfctl(nil, "-s", "Anchors")
		if err != nil {
			return err
		}
		if !regexp.MustCompile(`(?m)^\s*com\.apple(/\*)?\s*$`).MatchString(out) {
			return fmt.Errorf("firewall: the main pf ruleset does not evaluate anchor \"com.apple/*\" (see /etc/pf.conf), so weft's rules would have no effect")
		}
		f.checked = true
	}
	if _, err := pfctl(strings.NewReader(rules), "-a", pfAnchor, "-f", "-"); err != nil {
		return err
	}
	if !filter.DefaultAllow && f.token == "" {
		// -E counts references, so pf stays on for whoever else enabled it and goes off
		// when the last one releases its token.
		out, err := pfctl(nil, "-E")
		if err != nil {
			return err
		}
		m := regexp.MustCompile(`Token : (\d+)`).FindStringSubmatch(out)
		if m == nil {
			return fmt.Errorf("firewall: pfctl -E gave no token: %q", out)
		}
		f.token = m[1]
	}
	f.last, f.fwd = &a, fwd
	f.log.Info("firewall rules applied", "anchor", pfAnchor, "iface", iface,
		"default_allow", filter.DefaultAllow, "rules", len(filter.Rules))
	return nil
}

func (f *pfFirewall) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	// An empty ruleset empties the anchor, rules and tables; states of flows already
	// running stay, as they do on every reload.
	if _, err := pfctl(strings.NewReader("# weft stopped\n"), "-a", pfAnchor, "-f", "-"); err != nil {
		return err
	}
	if f.token != "" {
		if _, err := pfctl(nil, "-X", f.token); err != nil {
			return err
		}
		f.token = ""
	}
	f.closed = true
	f.log.Info("firewall rules removed", "anchor", pfAnchor)
	return nil
}

// pfctl runs pfctl and returns its combined output; pfctl reports on stderr even when
// it succeeds.
func pfctl(stdin *strings.Reader, args ...string) (string, error) {
	cmd := exec.Command("pfctl", args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("firewall: pfctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}
