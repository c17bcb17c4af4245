package broker

import (
	"net/http"
	"net/netip"

	"github.com/weftmesh/weft/broker/store"
	"github.com/weftmesh/weft/wire"
)

// handleRoutes replaces the networks the calling device advertises. Those the policy's
// autoApprovers approve are approved at once; the others wait for an administrator
// (weft-broker route approve). Peers learn of the change in their maps.
func (b *Broker) handleRoutes(w http.ResponseWriter, r *http.Request, dev store.Device, body []byte) {
	var req wire.RoutesRequest
	if err := decodeStrict(body, &req); err != nil {
		b.fail(w, r, err)
		return
	}
	if req.Advertise == nil {
		b.fail(w, r, errorf(http.StatusBadRequest, "advertise is missing: give the networks to advertise, [] for none"))
		return
	}
	ctx := r.Context()
	b.writeMu.Lock()
	d, changed, err := b.store.SetAdvertisedRoutes(ctx, dev.ID, req.Advertise)
	if err == nil && changed {
		var approved bool
		if approved, err = b.approveByPolicy(r, d); err == nil && approved {
			d, err = b.store.DeviceByID(ctx, d.ID)
		}
		if err == nil {
			err = b.refresh(ctx, d.AccountID)
		}
	}
	b.writeMu.Unlock()
	if err != nil {
		b.fail(w, r, err)
		return
	}
	if changed {
		b.log.Info("routes advertised", "account", d.Account, "device", d.Name, "advertised", d.Advertised, "approved", d.Routes())
	}
	writeJSON(w, http.StatusOK, wire.RoutesResponse{Advertised: nonNilPrefixes(d.Advertised), Routes: nonNilPrefixes(d.Routes())})
}

// approveByPolicy applies the account policy's autoApprovers to d's advertised routes;
// the caller holds writeMu. An unusable stored policy approves nothing.
func (b *Broker) approveByPolicy(r *http.Request, d store.Device) (bool, error) {
	p, err := b.loadPolicy(r.Context(), d.AccountID)
	if err != nil {
		b.log.Error("access policy unusable: no route is approved by it", "account", d.Account, "err", err)
		return false, nil
	}
	return b.autoApprove(r.Context(), p, []store.Device{d})
}

func nonNilPrefixes(ps []netip.Prefix) []netip.Prefix {
	if ps == nil {
		return []netip.Prefix{}
	}
	return ps
}
