package service

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/weftmesh/weft/platform"
	"github.com/weftmesh/weft/wire"
)

// osLog records, in order, what netConfig asks of the router, gateway and firewall.
type osLog struct {
	mu     sync.Mutex
	events []string
	fail   map[string]error // by event name prefix: make that call fail
}

func (l *osLog) add(format string, args ...any) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	ev := fmt.Sprintf(format, args...)
	for prefix, err := range l.fail {
		if strings.HasPrefix(ev, prefix) {
			l.events = append(l.events, ev+" FAILED")
			return err
		}
	}
	l.events = append(l.events, ev)
	return nil
}

// take returns the events so far and forgets them.
func (l *osLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.events
	l.events = nil
	return out
}

type fakeRouter struct{ log *osLog }

func (r fakeRouter) SetRoutes(iface string, routes []netip.Prefix, exclude []netip.Addr) error {
	return r.log.add("routes %s %v exclude %v", iface, routes, exclude)
}
func (r fakeRouter) Close() error { return r.log.add("routes close") }

type fakeGateway struct{ log *osLog }

func (g fakeGateway) Apply(cfg platform.GatewayConfig) error {
	var v []string
	for _, d := range cfg.Virtual {
		v = append(v, d.SecureIP.String()+"="+d.LANIP.String())
	}
	return g.log.add("gateway %s self %s routes %v virtual %v", cfg.TunnelIface, cfg.Self, cfg.Routes, v)
}
func (g fakeGateway) Close() error { return g.log.add("gateway close") }

type fakeFwdFirewall struct{ log *osLog }

func (f fakeFwdFirewall) Apply(string, netip.Addr, wire.PacketFilter) error { return nil }
func (f fakeFwdFirewall) Close() error                                      { return nil }
func (f fakeFwdFirewall) SetForwarding(fwd platform.Forwarding) error {
	return f.log.add("forward %v %v", fwd.Routes, fwd.Virtual)
}

// plainFirewall is a Firewall that is not a ForwardingFirewall.
type plainFirewall struct{}

func (plainFirewall) Apply(string, netip.Addr, wire.PacketFilter) error { return nil }
func (plainFirewall) Close() error                                      { return nil }

func testNetConfig(log *osLog, fw platform.Firewall) *netConfig {
	return newNetConfig(slog.New(slog.DiscardHandler), Config{
		NewRouter:  func(*slog.Logger) (platform.Router, error) { return fakeRouter{log}, log.add("new router") },
		NewGateway: func(*slog.Logger) (platform.Gateway, error) { return fakeGateway{log}, log.add("new gateway") },
	}, fw)
}

func TestNetConfigApplyAndClose(t *testing.T) {
	log := &osLog{}
	nc := testNetConfig(log, fakeFwdFirewall{log})
	self := netip.MustParseAddr("100.64.0.1")
	serving := netWant{iface: "weft0", gateway: platform.GatewayConfig{TunnelIface: "weft0", MeshPrefix: meshRange, Self: self,
		Routes:  pfx("192.168.9.0/24"),
		Virtual: []platform.VirtualDevice{{SecureIP: netip.MustParseAddr("100.64.0.21"), LANIP: netip.MustParseAddr("192.168.9.7")}}}}

	// Nothing wanted: nothing is created.
	if err := nc.apply(netWant{iface: "weft0"}); err != nil || len(log.take()) != 0 {
		t.Fatalf("empty want touched the OS: %v", err)
	}
	// The gateway's rules go in before the firewall lets its traffic through.
	if err := nc.apply(serving); err != nil {
		t.Fatal(err)
	}
	want := []string{"new gateway", "gateway weft0 self 100.64.0.1 routes [192.168.9.0/24] virtual [100.64.0.21=192.168.9.7]",
		"forward [192.168.9.0/24] [100.64.0.21]"}
	if got := log.take(); !slices.Equal(got, want) {
		t.Errorf("become a gateway:\n%q\nwant\n%q", got, want)
	}
	// The same want again changes nothing.
	if err := nc.apply(serving); err != nil || len(log.take()) != 0 {
		t.Errorf("reapplying the same want touched the OS: %v", err)
	}
	// Routes through a chosen gateway as well.
	both := serving
	both.routes, both.exclude = pfx("0.0.0.0/0"), []netip.Addr{netip.MustParseAddr("203.0.113.1")}
	if err := nc.apply(both); err != nil {
		t.Fatal(err)
	}
	want = []string{"new router", "routes weft0 [0.0.0.0/0] exclude [203.0.113.1]"}
	if got := log.take(); !slices.Equal(got, want) {
		t.Errorf("add routes:\n%q\nwant\n%q", got, want)
	}
	// The role ends: the firewall closes before the gateway's rules go; routes go too.
	if err := nc.apply(netWant{iface: "weft0"}); err != nil {
		t.Fatal(err)
	}
	want = []string{"forward [] []", "gateway close", "routes close"}
	if got := log.take(); !slices.Equal(got, want) {
		t.Errorf("role ends:\n%q\nwant\n%q", got, want)
	}
	// close removes whatever is there and later applies do nothing.
	if err := nc.apply(both); err != nil {
		t.Fatal(err)
	}
	log.take()
	nc.close()
	want = []string{"forward [] []", "gateway close", "routes close"}
	if got := log.take(); !slices.Equal(got, want) {
		t.Errorf("close:\n%q\nwant\n%q", got, want)
	}
	if err := nc.apply(both); err != nil || len(log.take()) != 0 {
		t.Errorf("apply after close touched the OS: %v", err)
	}
}

func TestNetConfigRetriesFailures(t *testing.T) {
	log := &osLog{fail: map[string]error{"gateway weft0": errors.New("nft says no")}}
	nc := testNetConfig(log, fakeFwdFirewall{log})
	w := netWant{iface: "weft0", routes: pfx("10.1.0.0/16"), gateway: platform.GatewayConfig{TunnelIface: "weft0",
		MeshPrefix: meshRange, Self: netip.MustParseAddr("100.64.0.1"), Routes: pfx("192.168.9.0/24")}}
	// A failing gateway does not stop the routes, nor open the firewall for it.
	if err := nc.apply(w); err == nil || !strings.Contains(err.Error(), "nft says no") {
		t.Fatalf("apply: %v", err)
	}
	got := log.take()
	if slices.ContainsFunc(got, func(e string) bool { return strings.HasPrefix(e, "forward") }) ||
		!slices.Contains(got, "routes weft0 [10.1.0.0/16] exclude []") {
		t.Errorf("after a gateway failure: %q", got)
	}
	// The next apply tries the gateway again; the routes, in force, stay alone.
	delete(log.fail, "gateway weft0")
	if err := nc.apply(w); err != nil {
		t.Fatal(err)
	}
	want := []string{"gateway weft0 self 100.64.0.1 routes [192.168.9.0/24] virtual []", "forward [192.168.9.0/24] []"}
	if got := log.take(); !slices.Equal(got, want) {
		t.Errorf("retry:\n%q\nwant\n%q", got, want)
	}
}

// A firewall that cannot let forwarded traffic through (Windows) makes the gateway role
// an error, not a silent gateway whose traffic is dropped.
func TestNetConfigFirewallWithoutForwarding(t *testing.T) {
	log := &osLog{}
	nc := testNetConfig(log, plainFirewall{})
	w := netWant{iface: "weft0", gateway: platform.GatewayConfig{TunnelIface: "weft0", MeshPrefix: meshRange,
		Self: netip.MustParseAddr("100.64.0.1"), Routes: pfx("192.168.9.0/24")}}
	if err := nc.apply(w); err == nil || !strings.Contains(err.Error(), "cannot let gateway traffic through") {
		t.Errorf("apply: %v", err)
	}
}
