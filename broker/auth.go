package broker

import (
	"errors"
	"net/http"
	"time"

	"github.com/weftmesh/weft/broker/store"
	"github.com/weftmesh/weft/internal/devauth"
	"github.com/weftmesh/weft/wire"
)

// deviceHandler serves a request whose sender proved it holds dev's key; body is
// the request body the proof covered.
type deviceHandler func(w http.ResponseWriter, r *http.Request, dev store.Device, body []byte)

func (b *Broker) handleChallenge(w http.ResponseWriter, r *http.Request) {
	var req wire.ChallengeRequest
	if err := readJSON(w, r, &req); err != nil {
		b.fail(w, r, err)
		return
	}
	if req.PublicKey.IsZero() {
		b.fail(w, r, errorf(http.StatusBadRequest, "public_key is missing"))
		return
	}
	if _, err := b.deviceByKey(r, req.PublicKey); err != nil {
		b.fail(w, r, err)
		return
	}
	nonce, expires, err := b.nonces.Issue(req.PublicKey)
	if err != nil {
		b.fail(w, r, errorf(http.StatusServiceUnavailable, "%v", err))
		return
	}
	writeJSON(w, http.StatusOK, wire.ChallengeResponse{Nonce: nonce, Expires: expires})
}

// deviceByKey finds the device holding key, turning "no such device" into a 401
// that says whether the key was never known or was revoked.
func (b *Broker) deviceByKey(r *http.Request, key wire.Key) (store.Device, error) {
	d, err := b.store.DeviceByKey(r.Context(), key)
	if errors.Is(err, store.ErrNotFound) {
		return d, errorf(http.StatusUnauthorized, "unknown key: no device is registered with it")
	}
	return d, err // a *store.RevokedError becomes 401 "device removed: <reason>"
}

// authenticated runs h only for a request carrying a valid proof of key possession
// (see package devauth) over a fresh nonce. The nonce is spent before anything else
// is checked, so no request can reuse it.
func (b *Broker) authenticated(h deviceHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(w, r)
		if err != nil {
			b.fail(w, r, err)
			return
		}
		v := r.Header.Get(wire.AuthHeader)
		if v == "" {
			b.fail(w, r, errorf(http.StatusUnauthorized, "missing %s header: ask %s for a nonce and sign the request", wire.AuthHeader, wire.PathChallenge))
			return
		}
		hdr, err := devauth.ParseHeader(v)
		if err != nil {
			b.fail(w, r, errorf(http.StatusUnauthorized, "%v", err))
			return
		}
		if err := b.nonces.Take(hdr.Nonce, hdr.Key); err != nil {
			b.fail(w, r, errorf(http.StatusUnauthorized, "%v", err))
			return
		}
		if !devauth.Verify(b.priv, hdr, r.Method, r.URL.Path, body) {
			b.fail(w, r, errorf(http.StatusUnauthorized, "request signature does not match: wrong key, or the request was altered"))
			return
		}
		dev, err := b.deviceByKey(r, hdr.Key)
		if err != nil {
			b.fail(w, r, err)
			return
		}
		if err := b.store.Touch(r.Context(), dev.ID, time.Now()); err != nil {
			b.log.Warn("record last seen", "device", dev.ID, "err", err)
		}
		h(w, r, dev, body)
	}
}
