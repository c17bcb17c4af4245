package service

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/mesh/stun/stuntest"
	"github.com/weftmesh/weft/wire"
)

func TestClassifyMapping(t *testing.T) {
	ap := netip.MustParseAddrPort
	local := []netip.Addr{netip.MustParseAddr("192.168.1.5"), netip.MustParseAddr("203.0.113.9")}
	none := netip.AddrPort{}
	cases := []struct {
		name   string
		mapped []netip.AddrPort
		want   string
		kept   *bool
	}{
		{"no answers", []netip.AddrPort{none, none}, "", nil},
		{"home NAT keeping the port", []netip.AddrPort{ap("198.51.100.7:51820"), ap("198.51.100.7:51820")}, wire.MappingIndependent, ptr(true)},
		{"home NAT changing the port", []netip.AddrPort{ap("198.51.100.7:40001"), ap("198.51.100.7:40001")}, wire.MappingIndependent, ptr(false)},
		{"symmetric NAT", []netip.AddrPort{ap("198.51.100.7:40001"), ap("198.51.100.7:40002")}, wire.MappingVaries, ptr(false)},
		{"different addresses", []netip.AddrPort{ap("198.51.100.7:51820"), ap("198.51.100.8:51820")}, wire.MappingVaries, ptr(true)},
		{"no NAT", []netip.AddrPort{ap("203.0.113.9:51820"), ap("203.0.113.9:51820")}, wire.MappingNone, ptr(true)},
		{"no NAT, one server answered", []netip.AddrPort{ap("203.0.113.9:51820"), none}, wire.MappingNone, ptr(true)},
		{"own address but another port is a NAT", []netip.AddrPort{ap("203.0.113.9:40001"), ap("203.0.113.9:40001")}, wire.MappingIndependent, ptr(false)},
		{"one answer behind a NAT", []netip.AddrPort{none, ap("198.51.100.7:51820")}, wire.MappingUnknown, ptr(true)},
		{"IPv4-mapped answers compare as IPv4", []netip.AddrPort{ap("[::ffff:198.51.100.7]:51820"), ap("198.51.100.7:51820")}, wire.MappingIndependent, ptr(true)},
	}
	for _, c := range cases {
		got, kept := classifyMapping(c.mapped, local, 51820)
		if got != c.want || (kept == nil) != (c.kept == nil) || kept != nil && *kept != *c.kept {
			t.Errorf("%s: mapping %q preserved %v, want %q %v", c.name, got, deref(kept), c.want, deref(c.kept))
		}
	}
}

func ptr(b bool) *bool { return &b }

func deref(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}

func TestUDPVerdictAndPreferredRelay(t *testing.T) {
	up := &wire.RelayProbe{OK: true}
	down := &wire.RelayProbe{Error: "no answer"}
	tlsOnly := []wire.NetcheckRelay{{Name: "far", UDP: down, TLS: down}, {Name: "near", UDP: down, TLS: up}}
	cases := []struct {
		name            string
		asked, answered int
		relays          []wire.NetcheckRelay
		udp, preferred  string
	}{
		{name: "nothing known", udp: wire.UDPUnchecked},
		{name: "STUN answered", asked: 2, answered: 1, udp: wire.UDPOK},
		{name: "STUN silent, relay over TLS only", asked: 2, relays: tlsOnly, udp: wire.UDPBlocked, preferred: "near"},
		{name: "STUN silent but a relay answered over UDP", asked: 2,
			relays: []wire.NetcheckRelay{{Name: "r", UDP: up}}, udp: wire.UDPOK, preferred: "r"},
		{name: "no STUN servers, relay silent over UDP", relays: []wire.NetcheckRelay{{Name: "r", UDP: down}}, udp: wire.UDPBlocked},
		{name: "no STUN servers, TLS-only relay", relays: []wire.NetcheckRelay{{Name: "r", TLS: up}}, udp: wire.UDPUnchecked, preferred: "r"},
		{name: "the broker's order wins over latency", asked: 1, answered: 1,
			relays: []wire.NetcheckRelay{{Name: "first", TLS: up}, {Name: "second", UDP: up}}, udp: wire.UDPOK, preferred: "first"},
	}
	for _, c := range cases {
		if got := udpVerdict(c.asked, c.answered, c.relays); got != c.udp {
			t.Errorf("%s: UDP %q, want %q", c.name, got, c.udp)
		}
		if got := preferredRelay(c.relays); got != c.preferred {
			t.Errorf("%s: preferred relay %q, want %q", c.name, got, c.preferred)
		}
	}
}

func TestSTUNProbeFromATemporarySocket(t *testing.T) {
	a, b := stuntest.Server(t), stuntest.Server(t)
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// The silent server holds the probe until the deadline.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	servers := []netip.AddrPort{a, silent.LocalAddr().(*net.UDPAddr).AddrPort(), b}
	mapped, port, err := stunProbe(ctx, servers)
	if err != nil {
		t.Fatal(err)
	}
	want := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	if len(mapped) != 3 || mapped[0] != want || mapped[1].IsValid() || mapped[2] != want {
		t.Fatalf("mapped %v, want %v, nothing, %v", mapped, want, want)
	}
	// Loopback is no NAT: the servers saw the socket itself.
	if m, kept := classifyMapping(mapped, []netip.Addr{want.Addr()}, port); m != wire.MappingNone || kept == nil || !*kept {
		t.Errorf("classified as %q, preserved %v", m, deref(kept))
	}
}

func TestNetcheckNotLoggedIn(t *testing.T) {
	d, err := Open(Config{StateDir: filepath.Join(t.TempDir(), "state"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	rec := do(NewHandler(d, nil), http.MethodGet, wire.LocalPathNetcheck, "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var n wire.Netcheck
	if err := json.Unmarshal(rec.Body.Bytes(), &n); err != nil {
		t.Fatal(err)
	}
	if n.State != wire.StateNeedsLogin || n.UDP != wire.UDPUnchecked || len(n.STUN) != 0 || len(n.Relays) != 0 || n.LAN == nil {
		t.Errorf("report %+v", n)
	}
	if len(n.Notes) != 1 || !strings.Contains(n.Notes[0], "not logged in: no broker") {
		t.Errorf("notes %q do not say why nothing was checked", n.Notes)
	}
	if rec := do(NewHandler(d, nil), http.MethodPost, wire.LocalPathNetcheck, ""); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d", rec.Code)
	}
	// A Backend without the check does not offer it.
	if rec := do(NewHandler(&recordingBackend{}, nil), http.MethodGet, wire.LocalPathNetcheck, ""); rec.Code != http.StatusNotFound {
		t.Errorf("without a NetcheckBackend: status %d", rec.Code)
	}
}
