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

func TestGatewayUsageErrors(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, c := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"gateway"}, "which gateway command?"},
		{[]string{"gateway", "frob"}, `unknown gateway command "frob"`},
		{[]string{"gateway", "advertise"}, "which networks?"},
		{[]string{"gateway", "advertise", "--none", "10.0.0.0/8"}, "--none withdraws everything"},
		{[]string{"gateway", "advertise", "10.0.0.1/8"}, "not a network address: use 10.0.0.0/8"},
		{[]string{"gateway", "advertise", "lan"}, `"lan" is not a network`},
		{[]string{"gateway", "advertise", "100.64.0.0/16"}, "inside the mesh range"},
		{[]string{"gateway", "use"}, "which gateway?"},
		{[]string{"gateway", "use", "gw", "extra"}, `unexpected argument "extra"`},
		{[]string{"gateway", "use", "gw", "--route", "x"}, `"x" is not a network`},
		{[]string{"gateway", "clear", "a", "b"}, `unexpected argument "b"`},
		{[]string{"gateway", "list", "x"}, `unexpected argument "x"`},
		{[]string{"vdev"}, "which vdev command?"},
		{[]string{"vdev", "add", "cam"}, "--lan-ip is missing"},
		{[]string{"vdev", "add", "--lan-ip", "192.168.1.5"}, "which name?"},
		{[]string{"vdev", "add", "cam", "--lan-ip", "cam"}, `--lan-ip "cam" is not an IP address`},
		{[]string{"vdev", "add", "cam", "--lan-ip", "100.64.1.1"}, "inside the mesh range"},
		{[]string{"vdev", "remove"}, "which virtual device?"},
	} {
		code, _, stderr := runWeft(t, append([]string{"--socket", sock}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.stderr) {
			t.Errorf("weft %v: exit %d, stderr %q; want 2 and %q", c.args, code, stderr, c.stderr)
		}
	}
	// Good command lines reach for weftd.
	for _, args := range [][]string{{"gateway", "advertise", "--none"}, {"gateway", "use", "gw", "--route", "0.0.0.0/0"},
		{"gateway", "clear"}, {"gateway", "list"}, {"vdev", "add", "cam", "--lan-ip", "192.168.1.50"}, {"vdev", "list"}, {"vdev", "remove", "cam"}} {
		code, _, stderr := runWeft(t, append([]string{"--socket", sock}, args...)...)
		if code != 1 || !strings.Contains(stderr, "weftd is not running") {
			t.Errorf("weft %v: exit %d, stderr %q", args, code, stderr)
		}
	}
}

func TestPrintStatusGateways(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	st := wire.Status{
		State: wire.StateRunning, Broker: "https://broker.test", BrokerConnected: true,
		Self: &wire.Device{ID: "me", Name: "laptop", Address: netip.MustParseAddr("100.64.0.5")},
		Peers: []wire.PeerStatus{
			{Device: wire.Device{ID: "g", Name: "gw", Address: netip.MustParseAddr("100.64.0.6"), Online: true,
				Routes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("10.1.0.0/16")}}},
			{Device: wire.Device{ID: "c", Name: "camera", Address: netip.MustParseAddr("100.64.0.7"), Kind: wire.KindVirtual, Gateway: "g"}},
			{Device: wire.Device{ID: "p", Name: "printer", Address: netip.MustParseAddr("100.64.0.8"), Kind: wire.KindVirtual, Gateway: "me",
				LANIP: netip.MustParseAddr("192.168.1.9")}},
		},
		GatewayRoutes: []wire.RouteChoice{
			{Route: netip.MustParsePrefix("0.0.0.0/0"), Gateway: "g", GatewayName: "gw", Active: true},
			{Route: netip.MustParsePrefix("10.9.0.0/16"), Gateway: "x", Reason: "the gateway is not in this device's map"},
		},
	}
	var b bytes.Buffer
	printStatus(&b, st, now)
	out := b.String()
	for _, want := range []string{
		"gateways:\n  gw (100.64.0.6): 0.0.0.0/0 (exit), 10.1.0.0/16\n",
		"routes through gateways:\n  0.0.0.0/0 (exit) via gw (in use)\n  10.9.0.0/16 via x (not in use: the gateway is not in this device's map)\n",
		"virtual devices:\n", "camera   100.64.0.7  via gw\n", "printer  100.64.0.8  via laptop (this device)  LAN 192.168.1.9\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	// Virtual devices have no tunnel: they are not in the peer table.
	table := out[:strings.Index(out, "gateways:")]
	if strings.Contains(table, "camera") || !strings.Contains(table, "gw") {
		t.Errorf("peer table:\n%s", table)
	}
}

func TestPrintGatewayList(t *testing.T) {
	var b bytes.Buffer
	printGatewayList(&env{stdout: &b}, wire.Gateways{
		Gateways: []wire.GatewayInfo{{ID: "g", Name: "gw", Address: netip.MustParseAddr("100.64.0.2"), Online: true,
			Advertised: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("10.2.0.0/16")},
			Routes:     []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}},
		Choices: []wire.RouteChoice{{Route: netip.MustParsePrefix("0.0.0.0/0"), Gateway: "g", GatewayName: "gw", Active: true},
			{Route: netip.MustParsePrefix("10.9.0.0/16"), Gateway: "x", Reason: "the gateway is not in this device's map"}},
		Advertised: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")},
	})
	want := `GATEWAY  MESH IP     ONLINE  ROUTE             APPROVED  USING
gw       100.64.0.2  yes     0.0.0.0/0 (exit)  yes       yes
gw       100.64.0.2  yes     10.2.0.0/16       no        no
10.9.0.0/16 via x is chosen but not in use: the gateway is not in this device's map
this device advertises 192.168.1.0/24; approved: none
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	printGatewayList(&env{stdout: &b}, wire.Gateways{})
	if b.String() != "no gateways: no other device offers routes\n" {
		t.Errorf("empty list: %q", b.String())
	}
}
