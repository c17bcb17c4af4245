package broker

import (
	"net/http"

	"github.com/weftmesh/weft/broker/store"
	"github.com/weftmesh/weft/wire"
)

// wireVirtual is v as its gateway sees it; the hub strips LANIP for everyone else and
// adds the filter the gateway enforces for it.
func (b *Broker) wireVirtual(v store.VirtualDevice) wire.Device {
	return wire.Device{
		ID:      v.ID,
		Name:    v.Name,
		Account: v.Account,
		FQDN:    v.Name + "." + v.Account + "." + b.cfg.Domain,
		Address: v.Address,
		Kind:    wire.KindVirtual,
		Gateway: v.GatewayID,
		LANIP:   v.LANIP,
	}
}

// handleVDevAdd registers a virtual device behind the calling device, which becomes its
// gateway (see wire.VDevRequest).
func (b *Broker) handleVDevAdd(w http.ResponseWriter, r *http.Request, dev store.Device, body []byte) {
	var req wire.VDevRequest
	if err := decodeStrict(body, &req); err != nil {
		b.fail(w, r, err)
		return
	}
	b.writeMu.Lock()
	v, changed, err := b.store.AddVirtualDevice(r.Context(), dev.ID, store.VirtualSpec{Name: req.Name, LANIP: req.LANIP})
	if err == nil && changed {
		err = b.refresh(r.Context(), v.AccountID)
	}
	b.writeMu.Unlock()
	if err != nil {
		b.fail(w, r, err)
		return
	}
	if changed {
		b.log.Info("virtual device registered", "account", v.Account, "gateway", v.Gateway, "name", v.Name,
			"address", v.Address, "lan_ip", v.LANIP)
	}
	d := b.wireVirtual(v)
	d.Online = b.hub.Online(v.AccountID, v.GatewayID)
	writeJSON(w, http.StatusOK, wire.VDevResponse{Device: d})
}

// handleVDevRemove removes one of the calling gateway's virtual devices.
func (b *Broker) handleVDevRemove(w http.ResponseWriter, r *http.Request, dev store.Device, body []byte) {
	var req wire.VDevRemoveRequest
	if err := decodeStrict(body, &req); err != nil {
		b.fail(w, r, err)
		return
	}
	if req.Name == "" {
		b.fail(w, r, errorf(http.StatusBadRequest, "name is missing"))
		return
	}
	v, err := b.removeVirtual(r, func() (store.VirtualDevice, error) {
		return b.store.RemoveVirtualDevice(r.Context(), dev.ID, req.Name)
	})
	if err != nil {
		b.fail(w, r, err)
		return
	}
	b.log.Info("virtual device removed by its gateway", "account", v.Account, "gateway", v.Gateway, "name", v.Name)
	w.WriteHeader(http.StatusNoContent)
}

// removeVirtual runs remove under writeMu and drops the virtual device from every map.
func (b *Broker) removeVirtual(r *http.Request, remove func() (store.VirtualDevice, error)) (store.VirtualDevice, error) {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	v, err := remove()
	if err != nil {
		return v, err
	}
	return v, b.refresh(r.Context(), v.AccountID)
}
