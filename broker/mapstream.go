package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/weftmesh/weft/broker/store"
	"github.com/weftmesh/weft/wire"
)

// streamWriteTimeout bounds one write to a map stream; a client that stops reading
// is cut off rather than holding the stream forever.
const streamWriteTimeout = 30 * time.Second

func (b *Broker) handleMap(w http.ResponseWriter, r *http.Request, dev store.Device, _ []byte) {
	ctx := r.Context()
	st, full, err := b.subscribe(ctx, dev)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	defer func() {
		b.hub.Unsubscribe(st)
		if err := b.store.Touch(context.WithoutCancel(ctx), dev.ID, time.Now()); err != nil {
			b.log.Warn("record last seen", "device", dev.ID, "err", err)
		}
	}()
	b.log.Debug("map stream opened", "account", dev.Account, "device", dev.Name, "remote", r.RemoteAddr)

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	send := func(u wire.MapUpdate) error {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if err := enc.Encode(u); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := send(full); err != nil {
		return
	}
	keepalive := time.NewTicker(b.cfg.Keepalive)
	defer keepalive.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-st.Done():
			if reason := b.hub.Revoked(st); reason != "" {
				_ = send(wire.MapUpdate{Revoked: reason})
				b.log.Info("map stream revoked", "account", dev.Account, "device", dev.Name, "reason", reason)
			}
			return
		case u := <-st.Updates():
			if send(u) != nil {
				return
			}
			keepalive.Reset(b.cfg.Keepalive)
		case <-keepalive.C:
			if send(wire.MapUpdate{}) != nil {
				return
			}
		}
	}
}

// subscribe opens dev's stream and builds its full map under writeMu, so no change
// falls between the two and every later change arrives as a delta.
func (b *Broker) subscribe(ctx context.Context, dev store.Device) (*Stream, wire.MapUpdate, error) {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	// The device may have been removed or re-keyed since the request was authenticated.
	cur, err := b.store.DeviceByID(ctx, dev.ID)
	if err != nil || cur.PublicKey != dev.PublicKey {
		if _, err := b.store.DeviceByKey(ctx, dev.PublicKey); err != nil {
			return nil, wire.MapUpdate{}, err
		}
		return nil, wire.MapUpdate{}, fmt.Errorf("device %s changed during authentication", dev.ID)
	}
	if !b.hub.Loaded(cur.AccountID) {
		if err := b.refresh(ctx, cur.AccountID); err != nil {
			return nil, wire.MapUpdate{}, err
		}
	}
	relays, err := b.relaysFor(ctx, cur.AccountID)
	if err != nil {
		return nil, wire.MapUpdate{}, err
	}
	st, full, ok := b.hub.Subscribe(cur.AccountID, cur.ID, cur.PublicKey)
	if !ok {
		return nil, wire.MapUpdate{}, fmt.Errorf("device %s is not in its account's map", cur.ID)
	}
	full.Relays, full.STUN = relays, b.stunAddrs
	return st, full, nil
}
