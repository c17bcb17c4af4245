package broker

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/weftmesh/weft/broker/store"
	"github.com/weftmesh/weft/wire"
)

// Admin API paths for gateways and virtual devices.
const (
	AdminPathRoutes     = "/admin/v1/routes"           // GET ?account=NAME: []AdminRoutes
	AdminPathApprove    = "/admin/v1/routes/approve"   // POST AdminRouteRequest: AdminRoutes
	AdminPathUnapprove  = "/admin/v1/routes/unapprove" // POST AdminRouteRequest: AdminRoutes
	AdminPathVDevs      = "/admin/v1/vdevs"            // GET ?account=NAME: []AdminVDev
	AdminPathRemoveVDev = "/admin/v1/vdevs/remove"     // POST AdminRemoveRequest: AdminVDev
)

// AdminRouteRequest approves or unapproves one route of a device (by name or ID).
type AdminRouteRequest struct {
	Account string       `json:"account"`
	Device  string       `json:"device"`
	Route   netip.Prefix `json:"route"`
}

// AdminRoutes are one device's routes.
type AdminRoutes struct {
	Device     string         `json:"device"` // its name
	ID         string         `json:"id"`
	Advertised []netip.Prefix `json:"advertised"`
	// Approved are the routes an administrator or the policy approved, advertised now or
	// not: an approval outlives a withdrawal, so advertising again restores the route.
	Approved []netip.Prefix `json:"approved"`
	Routes   []netip.Prefix `json:"routes"` // advertised and approved: what peers may use
}

// AdminVDev is a virtual device as an administrator sees it.
type AdminVDev struct {
	wire.Device           // with LANIP
	GatewayName string    `json:"gateway_name"`
	CreatedAt   time.Time `json:"created_at"`
}

func adminRoutes(d store.Device) AdminRoutes {
	return AdminRoutes{Device: d.Name, ID: d.ID, Advertised: nonNilPrefixes(d.Advertised),
		Approved: nonNilPrefixes(d.Approved), Routes: nonNilPrefixes(d.Routes())}
}

func (b *Broker) adminVDev(v store.VirtualDevice) AdminVDev {
	d := b.wireVirtual(v)
	d.Online = b.hub.Online(v.AccountID, v.GatewayID)
	return AdminVDev{Device: d, GatewayName: v.Gateway, CreatedAt: v.CreatedAt.UTC()}
}

func (b *Broker) adminListRoutes(w http.ResponseWriter, r *http.Request) {
	account, ok := b.accountParam(w, r)
	if !ok {
		return
	}
	devs, err := b.store.AccountDevices(r.Context(), account)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	out := []AdminRoutes{}
	for _, d := range devs {
		if len(d.Advertised) > 0 || len(d.Approved) > 0 {
			out = append(out, adminRoutes(d))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// adminApproval serves route approve (approve true) and unapprove.
func (b *Broker) adminApproval(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req AdminRouteRequest
		if err := readJSON(w, r, &req); err != nil {
			b.fail(w, r, err)
			return
		}
		if req.Account == "" || req.Device == "" || !req.Route.IsValid() {
			b.fail(w, r, errorf(http.StatusBadRequest, "account, device and route are all needed"))
			return
		}
		if err := wire.ValidateRoute(req.Route); err != nil {
			b.fail(w, r, errorf(http.StatusBadRequest, "%v", err))
			return
		}
		change := b.store.UnapproveRoute
		if approve {
			change = b.store.ApproveRoute
		}
		b.writeMu.Lock()
		d, err := change(r.Context(), req.Account, req.Device, req.Route)
		if err == nil {
			err = b.refresh(r.Context(), d.AccountID)
		}
		b.writeMu.Unlock()
		if err != nil {
			b.fail(w, r, err)
			return
		}
		b.log.Info("route approval changed", "account", req.Account, "device", d.Name, "route", req.Route, "approved", approve)
		writeJSON(w, http.StatusOK, adminRoutes(d))
	}
}

func (b *Broker) adminListVDevs(w http.ResponseWriter, r *http.Request) {
	account, ok := b.accountParam(w, r)
	if !ok {
		return
	}
	vs, err := b.store.AccountVirtualDevices(r.Context(), account)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	out := make([]AdminVDev, 0, len(vs))
	for _, v := range vs {
		out = append(out, b.adminVDev(v))
	}
	writeJSON(w, http.StatusOK, out)
}

func (b *Broker) adminRemoveVDev(w http.ResponseWriter, r *http.Request) {
	var req AdminRemoveRequest
	if err := readJSON(w, r, &req); err != nil {
		b.fail(w, r, err)
		return
	}
	if req.Account == "" || req.Device == "" {
		b.fail(w, r, errorf(http.StatusBadRequest, "account and virtual device are both needed"))
		return
	}
	v, err := b.removeVirtual(r, func() (store.VirtualDevice, error) {
		return b.store.RemoveAccountVirtualDevice(r.Context(), req.Account, req.Device)
	})
	if err != nil {
		b.fail(w, r, err)
		return
	}
	b.log.Info("virtual device removed", "account", v.Account, "gateway", v.Gateway, "name", v.Name)
	writeJSON(w, http.StatusOK, b.adminVDev(v))
}

// Routes lists the routes of an account's devices that advertise or have approved any.
func (c *AdminClient) Routes(ctx context.Context, account string) ([]AdminRoutes, error) {
	var out []AdminRoutes
	err := c.do(ctx, http.MethodGet, AdminPathRoutes+"?account="+url.QueryEscape(account), nil, &out)
	return out, err
}

// ApproveRoute approves a route a device advertises, at once.
func (c *AdminClient) ApproveRoute(ctx context.Context, req AdminRouteRequest) (AdminRoutes, error) {
	var out AdminRoutes
	err := c.do(ctx, http.MethodPost, AdminPathApprove, req, &out)
	return out, err
}

// UnapproveRoute withdraws a route's approval, at once.
func (c *AdminClient) UnapproveRoute(ctx context.Context, req AdminRouteRequest) (AdminRoutes, error) {
	var out AdminRoutes
	err := c.do(ctx, http.MethodPost, AdminPathUnapprove, req, &out)
	return out, err
}

// VirtualDevices lists an account's virtual devices.
func (c *AdminClient) VirtualDevices(ctx context.Context, account string) ([]AdminVDev, error) {
	var out []AdminVDev
	err := c.do(ctx, http.MethodGet, AdminPathVDevs+"?account="+url.QueryEscape(account), nil, &out)
	return out, err
}

// RemoveVirtualDevice removes a virtual device, by name or ID, whichever gateway hosts it.
func (c *AdminClient) RemoveVirtualDevice(ctx context.Context, account, name string) (AdminVDev, error) {
	var out AdminVDev
	err := c.do(ctx, http.MethodPost, AdminPathRemoveVDev, AdminRemoveRequest{Account: account, Device: name}, &out)
	return out, err
}
