package broker

import (
	"errors"
	"net/http"
	"time"

	"github.com/weftmesh/weft/broker/store"
	"github.com/weftmesh/weft/wire"
)

// punchInterval is how often one pair of devices may be told to punch: the probing a
// punch starts lasts seconds, so a second one within this adds nothing.
const punchInterval = 500 * time.Millisecond

// handlePunch asks the broker to make the calling device and a peer probe each other at
// the same time, so that each side's outgoing probes open its NAT for the other's.
func (b *Broker) handlePunch(w http.ResponseWriter, r *http.Request, dev store.Device, body []byte) {
	var req wire.PunchRequest
	if err := decodeStrict(body, &req); err != nil {
		b.fail(w, r, err)
		return
	}
	switch {
	case req.PeerID == "":
		b.fail(w, r, errorf(http.StatusBadRequest, "peer_id is missing"))
		return
	case req.PeerID == dev.ID:
		b.fail(w, r, errorf(http.StatusBadRequest, "a device cannot punch to itself"))
		return
	}
	notFound := errorf(http.StatusNotFound, "peer %q is not in this device's map", req.PeerID)
	peer, err := b.store.DeviceByID(r.Context(), req.PeerID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && peer.AccountID != dev.AccountID) {
		// Another account's device is answered like an unknown one: IDs leak nothing.
		b.fail(w, r, notFound)
		return
	}
	if err != nil {
		b.fail(w, r, err)
		return
	}
	punchErr := func(err error) error {
		switch {
		case errors.Is(err, errPunchNoPeer):
			return notFound
		case errors.Is(err, errPunchOffline):
			return errorf(http.StatusConflict, "peer %s is offline: it cannot probe now", peer.Name)
		}
		return err
	}
	// Only a punch that would be delivered counts against the pair's rate.
	if err := b.hub.CanPunch(dev.AccountID, dev.ID, peer.ID); err != nil {
		b.fail(w, r, punchErr(err))
		return
	}
	// One key per unordered pair: A punching B and B punching A start the same probing.
	pair := dev.ID + "\x00" + peer.ID
	if peer.ID < dev.ID {
		pair = peer.ID + "\x00" + dev.ID
	}
	if ok, wait := b.punches.Allow(pair); !ok {
		w.Header().Set("Retry-After", retryAfter(wait))
		writeError(w, http.StatusTooManyRequests, "this pair of devices was told to punch less than "+
			punchInterval.String()+" ago; both are probing already")
		return
	}
	if err := b.hub.Punch(dev.AccountID, dev.ID, peer.ID); err != nil {
		b.fail(w, r, punchErr(err))
		return
	}
	b.log.Debug("punch", "account", dev.Account, "from", dev.Name, "to", peer.Name)
	w.WriteHeader(http.StatusNoContent)
}
