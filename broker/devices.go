package broker

import (
	"net/http"

	"github.com/weftmesh/weft/broker/store"
	"github.com/weftmesh/weft/wire"
)

func (b *Broker) handleEndpoints(w http.ResponseWriter, r *http.Request, dev store.Device, body []byte) {
	var req wire.EndpointsRequest
	if err := decodeStrict(body, &req); err != nil {
		b.fail(w, r, err)
		return
	}
	if !wire.ValidNAT(req.NAT) {
		b.fail(w, r, errorf(http.StatusBadRequest, "nat %q is not one of \"\", %q, %q, %q, %q, %q",
			req.NAT, wire.NATNone, wire.NATEasy, wire.NATSymmetric, wire.NATUDPBlocked, wire.NATMapped))
		return
	}
	eps, err := composeCandidates(r.RemoteAddr, req.ListenPort, req.Reflexive, req.Endpoints)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	refl := usableEndpoints(req.Reflexive)
	b.writeMu.Lock()
	d, changed, err := b.store.ReportEndpoints(r.Context(), dev.ID, store.EndpointReport{
		ListenPort: req.ListenPort, Endpoints: eps, Reflexive: refl, NAT: req.NAT})
	if err == nil && changed {
		// Devices re-report on every network change; only a real change reaches peers.
		err = b.refresh(r.Context(), d.AccountID)
	}
	b.writeMu.Unlock()
	if err != nil {
		b.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (b *Broker) handleLogout(w http.ResponseWriter, r *http.Request, dev store.Device, body []byte) {
	if len(body) != 0 {
		if err := decodeStrict(body, &struct{}{}); err != nil {
			b.fail(w, r, err)
			return
		}
	}
	if _, err := b.removeDevice(r, "", dev.ID, "logged out"); err != nil {
		b.fail(w, r, err)
		return
	}
	b.log.Info("device logged out", "account", dev.Account, "device", dev.Name, "id", dev.ID)
	w.WriteHeader(http.StatusNoContent)
}

// removeDevice deletes a device (by ID if account is "", else by name or ID in the
// named account), ends its map stream with reason and drops it from its peers' maps.
func (b *Broker) removeDevice(r *http.Request, account, device, reason string) (store.Device, error) {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	var d store.Device
	var err error
	if account == "" {
		d, err = b.store.RemoveDeviceByID(r.Context(), device, reason)
	} else {
		d, err = b.store.RemoveDevice(r.Context(), account, device, reason)
	}
	if err != nil {
		return d, err
	}
	b.hub.End(d.AccountID, d.ID, reason)
	return d, b.refresh(r.Context(), d.AccountID)
}
