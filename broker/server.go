package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/weftmesh/weft/broker/store"
	"github.com/weftmesh/weft/internal/ipam"
	"github.com/weftmesh/weft/wire"
)

// bodyReadTimeout bounds how long a client may take to send a request body.
const bodyReadTimeout = 30 * time.Second

// Handler is the broker's HTTPS API.
func (b *Broker) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(wire.PathInfo, route(http.MethodGet, b.handleInfo))
	mux.Handle(wire.PathRegister, route(http.MethodPost, b.handleRegister))
	mux.Handle(wire.PathChallenge, route(http.MethodPost, b.handleChallenge))
	mux.Handle(wire.PathMap, route(http.MethodGet, b.authenticated(b.handleMap)))
	mux.Handle(wire.PathEndpoints, route(http.MethodPost, b.authenticated(b.handleEndpoints)))
	mux.Handle(wire.PathLogout, route(http.MethodPost, b.authenticated(b.handleLogout)))
	mux.Handle(wire.PathPunch, route(http.MethodPost, b.authenticated(b.handlePunch)))
	mux.Handle(wire.PathRoutes, route(http.MethodPost, b.authenticated(b.handleRoutes)))
	mux.Handle(wire.PathVDevs, route(http.MethodPost, b.authenticated(b.handleVDevAdd)))
	mux.Handle(wire.PathVDevsRemove, route(http.MethodPost, b.authenticated(b.handleVDevRemove)))
	newLoginFlow(b, time.Now, wire.LoginWaitTimeout).routes(mux) // browser login (login.go)
	b.accountRoutes(mux)                                         // account sessions for people (account.go)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %s", r.URL.Path))
	})
	return mux
}

// route restricts h to one method, answering others with a JSON 405.
func route(method string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			w.Header().Set("Allow", method)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s needs %s, not %s", r.URL.Path, method, r.Method))
			return
		}
		h(w, r)
	})
}

// httpError is an error with the status it is answered with.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// statusOf maps an error to its HTTP status and the line the client sees.
// Unexpected errors are logged and hidden behind a generic message.
func (b *Broker) statusOf(err error) (int, string) {
	var he *httpError
	var rev *store.RevokedError
	switch {
	case errors.As(err, &he):
		return he.status, he.msg
	case errors.As(err, &rev):
		return http.StatusUnauthorized, "device removed: " + rev.Reason
	case errors.Is(err, store.ErrInvalid):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, store.ErrAuthKeyUnknown), errors.Is(err, store.ErrAuthKeyExpired),
		errors.Is(err, store.ErrAuthKeyUsed), errors.Is(err, store.ErrBadCredentials):
		return http.StatusUnauthorized, err.Error()
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrConflict), errors.Is(err, ipam.ErrExhausted):
		return http.StatusConflict, err.Error()
	}
	b.log.Error("request failed", "err", err)
	return http.StatusInternalServerError, "internal error; see the broker's log"
}

func (b *Broker) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := b.statusOf(err)
	if status != http.StatusInternalServerError {
		b.log.Debug("request refused", "path", r.URL.Path, "remote", r.RemoteAddr, "status", status, "err", msg)
	}
	writeError(w, status, msg)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, wire.Error{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		slog.Debug("write response", "err", err)
	}
}

// readBody reads the whole request body, refusing one over wire.MaxRequestBody.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(bodyReadTimeout))
	// Clear the deadline again: left set, it would end a long map stream.
	defer rc.SetReadDeadline(time.Time{})
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, wire.MaxRequestBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, errorf(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", wire.MaxRequestBody)
	}
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "read request body: %v", err)
	}
	return body, nil
}

// decodeStrict parses body as exactly one JSON value of v's type, refusing unknown fields.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errorf(http.StatusBadRequest, "request body is empty, want JSON")
		}
		return errorf(http.StatusBadRequest, "malformed request: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, "malformed request: data after the JSON object")
	}
	return nil
}

// readJSON reads and strictly decodes the request body into v.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	return decodeStrict(body, v)
}

func (b *Broker) handleInfo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, wire.BrokerInfo{
		Version:   wire.ProtocolVersion,
		PublicKey: b.PublicKey(),
		Domain:    b.cfg.Domain,
	})
}

// wireDevice is d as devices see it.
func (b *Broker) wireDevice(d store.Device) wire.Device {
	return wire.Device{
		ID:         d.ID,
		Name:       d.Name,
		Account:    d.Account,
		FQDN:       d.Name + "." + d.Account + "." + b.cfg.Domain,
		PublicKey:  d.PublicKey,
		Address:    d.Address,
		Endpoints:  d.Endpoints,
		NAT:        d.NAT,
		Online:     b.hub.Online(d.AccountID, d.ID),
		Advertised: d.Advertised,
		Routes:     d.Routes(),
	}
}
