package service

import (
	"context"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/weftmesh/weft/wire"
	"golang.org/x/net/icmp"
)

func TestPingRefusesBadTargets(t *testing.T) {
	d, err := Open(Config{StateDir: filepath.Join(t.TempDir(), "state")})
	if err != nil {
		t.Fatal(err)
	}
	d.peers.Apply(wire.MapUpdate{Full: true, Peers: []wire.Device{dev(t, "p1", "alpha", "100.64.0.50")}})
	cases := []struct {
		req  wire.PingRequest
		code int
		msg  string
	}{
		{wire.PingRequest{Peer: "zulu"}, http.StatusNotFound, "no peer named zulu"},
		{wire.PingRequest{Peer: ""}, http.StatusBadRequest, "no peer given"},
		{wire.PingRequest{Peer: "alpha", Count: 1000}, http.StatusBadRequest, "count must be between 1 and 100"},
		{wire.PingRequest{Peer: "alpha"}, http.StatusConflict, "the tunnel is down: run weft up"},
	}
	for _, c := range cases {
		_, err := d.Ping(context.Background(), c.req)
		e, ok := err.(*Error)
		if !ok || e.Code != c.code || e.Error() != c.msg {
			t.Errorf("ping %+v: got %v, want %d %q", c.req, err, c.code, c.msg)
		}
	}
}

// TestEchoLoopback checks the ICMP exchange itself against the loopback interface.
func TestEchoLoopback(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("raw ICMP sockets need root")
	}
	conn, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	p := pinger{conn: conn, id: 4242}
	for seq := 1; seq <= 2; seq++ {
		if _, err := p.echo(netip.MustParseAddr("127.0.0.1"), seq); err != nil {
			t.Fatalf("echo seq %d to loopback: %v", seq, err)
		}
	}
}
