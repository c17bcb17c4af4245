package main

import (
	"bytes"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/wire"
)

func TestPrintNetcheck(t *testing.T) {
	yes := true
	n := wire.Netcheck{
		State: wire.StateRunning, Broker: "https://broker.test", UDP: wire.UDPOK,
		Socket: wire.SocketWireGuard, LocalPort: 51820,
		STUN: []wire.NetcheckSTUN{
			{Server: "203.0.113.1:3478", Mapped: netip.MustParseAddrPort("198.51.100.7:51820")},
			{Server: "203.0.113.1:3479", Error: "no answer within 3s"},
		},
		Mapping: wire.MappingUnknown, PortPreserved: &yes,
		LAN: []netip.Addr{netip.MustParseAddr("192.168.1.5")},
		Relays: []wire.NetcheckRelay{
			{Name: "home", UDP: &wire.RelayProbe{Addr: "203.0.113.3:3480", Error: "no answer within 3s"},
				TLS: &wire.RelayProbe{Addr: "203.0.113.3:443", OK: true, Latency: 2500 * time.Microsecond}},
			{Name: "tls-only", TLS: &wire.RelayProbe{Addr: "203.0.113.4:443", OK: true}},
		},
		PreferredRelay: "home",
		Notes:          []string{"not connected to the broker: checking the STUN servers and relays of the last map"},
	}
	var b bytes.Buffer
	printNetcheck(&b, n)
	out := b.String()
	for _, want := range []string{
		"weftd: running, broker https://broker.test",
		"UDP: ok",
		"from WireGuard's socket, port 51820",
		"203.0.113.1:3478  198.51.100.7:51820",
		"203.0.113.1:3479  no answer within 3s",
		"Mapping: unknown (only one STUN server answered)",
		"Port preserved: yes",
		"LAN addresses: 192.168.1.5",
		"Relays (preferred: home):",
		"home      UDP unreachable (no answer within 3s)  TLS 2.5 ms",
		"tls-only  UDP -                                  TLS ok (no ping answer)",
		"Note: not connected to the broker",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	b.Reset()
	printNetcheck(&b, wire.Netcheck{State: wire.StateNeedsLogin, UDP: wire.UDPUnchecked,
		Notes: []string{"not logged in: no broker, so no STUN servers or relays to check"}})
	out = b.String()
	for _, want := range []string{"UDP: not checked", "LAN addresses: none", "Note: not logged in: no broker"} {
		if !strings.Contains(out, want) {
			t.Errorf("not logged in: output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Mapping") || strings.Contains(out, "Relays") {
		t.Errorf("not logged in: reports what it did not check:\n%s", out)
	}
}

func TestNetcheckErrors(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	if code, _, stderr := runWeft(t, "--socket", sock, "netcheck"); code != 1 || stderr != "weft: netcheck: weftd is not running (no socket at "+sock+")\n" {
		t.Errorf("no weftd: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runWeft(t, "netcheck", "now"); code != 2 || !strings.Contains(stderr, `unexpected argument "now"`) {
		t.Errorf("extra argument: exit %d, stderr %q", code, stderr)
	}
}

func TestPrintPortMapping(t *testing.T) {
	mapped := &wire.PortMapping{Protocol: wire.PortMapPCP, Gateway: netip.MustParseAddr("192.168.1.1"),
		Internal: netip.MustParseAddrPort("192.168.1.5:51820"), External: netip.MustParseAddrPort("198.51.100.7:51820"),
		Lifetime: 2 * time.Hour}
	for _, c := range []struct {
		pm   *wire.PortMapping
		want string
	}{
		{mapped, "Port mapping: 198.51.100.7:51820 (PCP on gateway 192.168.1.1, to port 51820; lifetime 2h0m0s)"},
		{&wire.PortMapping{Error: "no PCP or NAT-PMP answer"}, "Port mapping: none (no PCP or NAT-PMP answer)"},
		{&wire.PortMapping{}, "Port mapping: none yet (asking the gateway)"},
	} {
		var b bytes.Buffer
		printNetcheck(&b, wire.Netcheck{State: wire.StateRunning, UDP: wire.UDPOK, PortMapping: c.pm})
		if !strings.Contains(b.String(), c.want) {
			t.Errorf("output lacks %q:\n%s", c.want, b.String())
		}
	}
	var b bytes.Buffer
	printStatus(&b, wire.Status{State: wire.StateRunning, Interface: "weft0", ListenPort: 51820, PortMapping: mapped}, time.Now())
	if want := "port mapping: 198.51.100.7:51820 (PCP"; !strings.Contains(b.String(), want) {
		t.Errorf("status lacks %q:\n%s", want, b.String())
	}
	b.Reset()
	printStatus(&b, wire.Status{State: wire.StateRunning, PortMapping: &wire.PortMapping{Error: "refused"}}, time.Now())
	if strings.Contains(b.String(), "port mapping") {
		t.Errorf("status shows a port mapping it does not have:\n%s", b.String())
	}
}
