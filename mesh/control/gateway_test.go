package control

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"testing"

	"github.com/weftmesh/weft/mesh/control/controltest"
	"github.com/weftmesh/weft/wire"
)

func TestGatewayCalls(t *testing.T) {
	b := controltest.NewBroker(t)
	c := newClient(t, b, 0)
	ctx := context.Background()
	if _, err := c.Register(ctx, wire.RegisterRequest{Name: "gw", AuthKey: controltest.GoodAuthKey}); err != nil {
		t.Fatal(err)
	}
	exit, lan := netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("192.168.1.0/24")
	b.ApproveRoutes(lan)

	resp, err := c.AdvertiseRoutes(ctx, []netip.Prefix{exit, lan})
	if err != nil || !slices.Equal(resp.Advertised, []netip.Prefix{exit, lan}) || !slices.Equal(resp.Routes, []netip.Prefix{lan}) {
		t.Fatalf("advertise: %+v %v", resp, err)
	}
	// nil withdraws everything: it is sent as an empty list, not as a missing one.
	if resp, err := c.AdvertiseRoutes(ctx, nil); err != nil || len(resp.Advertised) != 0 || b.Advertised(c.pub) == nil {
		t.Fatalf("withdraw: %+v %v (broker has %v)", resp, err, b.Advertised(c.pub))
	}

	v, err := c.AddVirtualDevice(ctx, wire.VDevRequest{Name: "camera", LANIP: netip.MustParseAddr("192.168.1.50")})
	if err != nil || v.Name != "camera" || v.Kind != wire.KindVirtual || v.LANIP != netip.MustParseAddr("192.168.1.50") || !v.Address.IsValid() {
		t.Fatalf("add: %+v %v", v, err)
	}
	_, err = c.AddVirtualDevice(ctx, wire.VDevRequest{Name: "bad", LANIP: netip.MustParseAddr("100.64.0.9")})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest {
		t.Fatalf("add in the mesh range: %v", err)
	}
	if err := c.RemoveVirtualDevice(ctx, "camera"); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveVirtualDevice(ctx, "camera"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Fatalf("second remove: %v", err)
	}
	if len(b.VirtualDevices(c.pub)) != 0 {
		t.Fatalf("broker still has %v", b.VirtualDevices(c.pub))
	}
}
