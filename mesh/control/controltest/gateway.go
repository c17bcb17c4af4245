package controltest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"slices"

	"github.com/weftmesh/weft/wire"
)

// gatewayState is what the fake broker keeps of routes and virtual devices; guarded by
// Broker.mu.
type gatewayState struct {
	approve    []netip.Prefix                      // advertised routes in here are approved at once
	advertised map[wire.Key][]netip.Prefix         // by device key
	vdevs      map[wire.Key]map[string]wire.Device // by gateway key, then name
}

// ApproveRoutes makes the broker approve these routes whenever a device advertises them.
func (b *Broker) ApproveRoutes(routes ...netip.Prefix) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gw.approve = append(b.gw.approve, routes...)
}

// Advertised returns what the device with key k last advertised.
func (b *Broker) Advertised(k wire.Key) []netip.Prefix {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.gw.advertised[k])
}

// VirtualDevices returns the virtual devices of the gateway with key k, by name.
func (b *Broker) VirtualDevices(k wire.Key) map[string]wire.Device {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]wire.Device{}
	for n, v := range b.gw.vdevs[k] {
		out[n] = v
	}
	return out
}

func (b *Broker) routes(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	d, ok := b.authenticate(w, r, body)
	if !ok {
		return
	}
	var req wire.RoutesRequest
	if err := json.Unmarshal(body, &req); err != nil || req.Advertise == nil {
		Fail(w, http.StatusBadRequest, "malformed request")
		return
	}
	for _, p := range req.Advertise {
		if err := wire.ValidateRoute(p); err != nil {
			Fail(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	b.mu.Lock()
	if b.gw.advertised == nil {
		b.gw.advertised = map[wire.Key][]netip.Prefix{}
	}
	b.gw.advertised[d.PublicKey] = req.Advertise
	resp := wire.RoutesResponse{Advertised: req.Advertise, Routes: []netip.Prefix{}}
	for _, p := range req.Advertise {
		if slices.Contains(b.gw.approve, p) {
			resp.Routes = append(resp.Routes, p)
		}
	}
	b.mu.Unlock()
	json.NewEncoder(w).Encode(resp)
}

func (b *Broker) vdevAdd(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	d, ok := b.authenticate(w, r, body)
	if !ok {
		return
	}
	var req wire.VDevRequest
	if err := json.Unmarshal(body, &req); err != nil {
		Fail(w, http.StatusBadRequest, "malformed request")
		return
	}
	if err := wire.ValidateLANIP(req.LANIP); err != nil {
		Fail(w, http.StatusBadRequest, err.Error())
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gw.vdevs == nil {
		b.gw.vdevs = map[wire.Key]map[string]wire.Device{}
	}
	mine := b.gw.vdevs[d.PublicKey]
	if mine == nil {
		mine = map[string]wire.Device{}
		b.gw.vdevs[d.PublicKey] = mine
	}
	v, ok := mine[req.Name]
	if !ok {
		n := 0
		for _, m := range b.gw.vdevs {
			n += len(m)
		}
		v = wire.Device{ID: "vdev-" + req.Name, Name: req.Name, Account: "acme", FQDN: req.Name + ".acme.mesh.test",
			Address: netip.AddrFrom4([4]byte{100, 64, 1, byte(n + 1)}), Kind: wire.KindVirtual, Gateway: d.ID}
	}
	v.LANIP = req.LANIP
	mine[req.Name] = v
	json.NewEncoder(w).Encode(wire.VDevResponse{Device: v})
}

func (b *Broker) vdevRemove(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	d, ok := b.authenticate(w, r, body)
	if !ok {
		return
	}
	var req wire.VDevRemoveRequest
	if err := json.Unmarshal(body, &req); err != nil {
		Fail(w, http.StatusBadRequest, "malformed request")
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.gw.vdevs[d.PublicKey][req.Name]; !ok {
		Fail(w, http.StatusNotFound, "no virtual device "+req.Name+" behind this device")
		return
	}
	delete(b.gw.vdevs[d.PublicKey], req.Name)
}
