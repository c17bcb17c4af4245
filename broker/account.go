package broker

import (
	"errors"
	"net/http"
	"strings"

	"github.com/weftmesh/weft/broker/store"
	"github.com/weftmesh/weft/wire"
)

// userSession is the account session a request authenticated with.
type userSession struct {
	store.Session
	token string
}

// accountRoutes adds the account API for people, authenticated by session tokens.
func (b *Broker) accountRoutes(mux *http.ServeMux) {
	mux.Handle(wire.PathSessionLogout, route(http.MethodPost, b.withSession(b.handleSessionLogout)))
	mux.Handle(wire.PathAccountMe, route(http.MethodGet, b.withSession(b.handleAccountMe)))
	mux.Handle(wire.PathAccountDevices, route(http.MethodGet, b.withSession(b.handleAccountDevices)))
	mux.Handle(wire.PathAccountRemove, route(http.MethodPost, b.withSession(b.handleAccountRemove)))
}

// withSession lets through requests with a live session token in "Authorization: Bearer
// TOKEN"; others get 401 saying why.
func (b *Broker) withSession(h func(http.ResponseWriter, *http.Request, userSession)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || token == "" {
			unauthorized(w, "missing session: send Authorization: Bearer TOKEN (log in to your account for one)")
			return
		}
		sess, err := b.store.SessionByToken(r.Context(), strings.TrimSpace(token))
		switch {
		case errors.Is(err, store.ErrSessionUnknown), errors.Is(err, store.ErrSessionExpired), errors.Is(err, store.ErrSessionRevoked),
			errors.Is(err, store.ErrSessionRevokedByAdmin):
			unauthorized(w, err.Error())
			return
		case err != nil:
			b.fail(w, r, err)
			return
		}
		h(w, r, userSession{Session: sess, token: strings.TrimSpace(token)})
	}
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="weft"`)
	writeError(w, http.StatusUnauthorized, msg)
}

// noBody refuses a request body other than nothing or {}.
func noBody(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r)
	if err == nil && len(body) != 0 {
		err = decodeStrict(body, &struct{}{})
	}
	return err
}

func (b *Broker) handleSessionLogout(w http.ResponseWriter, r *http.Request, s userSession) {
	if err := noBody(w, r); err != nil {
		b.fail(w, r, err)
		return
	}
	if err := b.store.RevokeSession(r.Context(), s.token); err != nil {
		b.fail(w, r, err)
		return
	}
	b.log.Info("account session logged out", "account", s.Account, "email", s.Email)
	w.WriteHeader(http.StatusNoContent)
}

func (b *Broker) handleAccountMe(w http.ResponseWriter, r *http.Request, s userSession) {
	writeJSON(w, http.StatusOK, accountMe(s.Session))
}

func (b *Broker) handleAccountDevices(w http.ResponseWriter, r *http.Request, s userSession) {
	devs, err := b.store.AccountDevices(r.Context(), s.Account)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	out := wire.AccountDevices{Devices: make([]wire.Device, 0, len(devs))}
	for _, d := range devs {
		out.Devices = append(out.Devices, b.wireDevice(d))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleAccountRemove removes a device of the session's account, for administrators,
// exactly as weft-broker device remove does: its stream is revoked and its peers drop it.
func (b *Broker) handleAccountRemove(w http.ResponseWriter, r *http.Request, s userSession) {
	var req wire.AccountRemoveRequest
	if err := readJSON(w, r, &req); err != nil {
		b.fail(w, r, err)
		return
	}
	if req.Device == "" {
		b.fail(w, r, errorf(http.StatusBadRequest, "device is missing: give its ID or name"))
		return
	}
	if !s.Admin {
		b.log.Info("device removal refused: not an administrator", "account", s.Account, "email", s.Email, "device", req.Device)
		writeError(w, http.StatusForbidden, "admin only: "+s.Email+" is not an administrator of "+s.Account)
		return
	}
	d, err := b.removeDevice(r, s.Account, req.Device, "removed by administrator "+s.Email)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	b.log.Info("device removed", "account", d.Account, "device", d.Name, "id", d.ID, "by", s.Email)
	writeJSON(w, http.StatusOK, b.wireDevice(d))
}
