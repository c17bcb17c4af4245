package tray

import (
	"context"
	"net/http"
	"net/netip"
	"reflect"
	"testing"

	"github.com/weftmesh/weft/ipc"
	"github.com/weftmesh/weft/wire"
)

// fakeLocalGateways answers like weftd and records what the tray asked.
type fakeLocalGateways struct {
	list   wire.Gateways
	used   []wire.GatewayUseRequest
	clears []wire.GatewayClearRequest
	err    error
}

func (f *fakeLocalGateways) Gateways(context.Context) (wire.Gateways, error) { return f.list, f.err }
func (f *fakeLocalGateways) UseGateway(_ context.Context, r wire.GatewayUseRequest) (wire.Gateways, error) {
	f.used = append(f.used, r)
	return f.list, f.err
}
func (f *fakeLocalGateways) ClearGateway(_ context.Context, r wire.GatewayClearRequest) (wire.Gateways, error) {
	f.clears = append(f.clears, r)
	return f.list, f.err
}

func TestLocalGateways(t *testing.T) {
	exit, lan := netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("192.168.1.0/24")
	f := &fakeLocalGateways{list: wire.Gateways{
		Gateways: []wire.GatewayInfo{
			{ID: "g1", Name: "exit1", Address: netip.MustParseAddr("100.64.0.2"), Routes: []netip.Prefix{lan, exit}},
			{ID: "g2", Name: "office", Address: netip.MustParseAddr("100.64.0.3"), Routes: []netip.Prefix{lan}},
			{ID: "g3", Name: "pending", Address: netip.MustParseAddr("100.64.0.4"), Advertised: []netip.Prefix{exit}},
		},
		Choices: []wire.RouteChoice{{Route: lan, Gateway: "g2", Active: true}, {Route: exit, Gateway: "g1", Active: true}},
	}}
	api := LocalGateways{Local: f}
	g, err := api.Gateways(context.Background())
	// Only approved exit nodes are picks; the one chosen for the internet is in use.
	want := Gateways{List: []Gateway{{ID: "g1", Name: "exit1", Address: netip.MustParseAddr("100.64.0.2")}}, Using: "g1"}
	if err != nil || !reflect.DeepEqual(g, want) {
		t.Fatalf("gateways %+v %v, want %+v", g, err, want)
	}
	// A choice for an exit that is no longer a pick checks nothing.
	f.list.Choices = []wire.RouteChoice{{Route: exit, Gateway: "g3"}}
	if g, _ := api.Gateways(context.Background()); g.Using != "" {
		t.Errorf("using %q", g.Using)
	}

	if err := api.UseGateway(context.Background(), "g1"); err != nil || !reflect.DeepEqual(f.used, []wire.GatewayUseRequest{{Gateway: "g1", Route: exit}}) {
		t.Errorf("use: %v %+v", err, f.used)
	}
	// None clears the internet route only; none being in use already is no error.
	f.err = &ipc.APIError{Status: http.StatusNotFound, Message: "no gateway is chosen for 0.0.0.0/0"}
	if err := api.UseGateway(context.Background(), ""); err != nil || !reflect.DeepEqual(f.clears, []wire.GatewayClearRequest{{Route: exit}}) {
		t.Errorf("none: %v %+v", err, f.clears)
	}
	f.err = &ipc.APIError{Status: http.StatusConflict, Message: "not logged in"}
	if err := api.UseGateway(context.Background(), ""); err == nil {
		t.Error("a refused clear was not reported")
	}
}
