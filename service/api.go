package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/weftmesh/weft/wire"
)

// Backend is what the local API serves; *Daemon implements it. Every method either
// does what it says or returns an error and changes nothing.
type Backend interface {
	Status(ctx context.Context) wire.Status
	Up(ctx context.Context, req wire.UpRequest) (wire.Status, error)
	Down(ctx context.Context) (wire.Status, error)
	Logout(ctx context.Context) (wire.Status, error)
	Ping(ctx context.Context, req wire.PingRequest) (wire.PingResult, error)
}

// Error is a failure with the HTTP status the local API answers it with.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func errorf(code int, format string, args ...any) error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// NewHandler serves the local API (wire/local.go) from b: JSON in and out, bodies up to
// wire.MaxRequestBody, unknown fields refused, and {"error": "..."} on every failure.
func NewHandler(b Backend, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	h := &handler{b: b, log: log}
	return h
}

type handler struct {
	b   Backend
	log *slog.Logger
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var method string
	var serve func(w http.ResponseWriter, r *http.Request) (any, error)
	switch r.URL.Path {
	case wire.LocalPathStatus:
		method = http.MethodGet
		serve = func(w http.ResponseWriter, r *http.Request) (any, error) {
			return h.b.Status(r.Context()), nil
		}
	case wire.LocalPathUp:
		method = http.MethodPost
		serve = func(w http.ResponseWriter, r *http.Request) (any, error) {
			var req wire.UpRequest
			if err := decode(w, r, &req, false); err != nil {
				return nil, err
			}
			return h.b.Up(r.Context(), req)
		}
	case wire.LocalPathDown:
		method = http.MethodPost
		serve = func(w http.ResponseWriter, r *http.Request) (any, error) {
			if err := decode(w, r, &struct{}{}, true); err != nil {
				return nil, err
			}
			return h.b.Down(r.Context())
		}
	case wire.LocalPathLogout:
		method = http.MethodPost
		serve = func(w http.ResponseWriter, r *http.Request) (any, error) {
			if err := decode(w, r, &struct{}{}, true); err != nil {
				return nil, err
			}
			return h.b.Logout(r.Context())
		}
	case wire.LocalPathPing:
		method = http.MethodPost
		serve = func(w http.ResponseWriter, r *http.Request) (any, error) {
			var req wire.PingRequest
			if err := decode(w, r, &req, false); err != nil {
				return nil, err
			}
			return h.b.Ping(r.Context(), req)
		}
	case wire.LocalPathBroker:
		src, ok := h.b.(BrokerSource)
		if !ok {
			writeError(w, errorf(http.StatusNotFound, "no local API endpoint %s", r.URL.Path))
			return
		}
		method = http.MethodGet
		serve = func(w http.ResponseWriter, r *http.Request) (any, error) {
			return src.Broker(r.Context())
		}
	case wire.LocalPathNetcheck:
		nb, ok := h.b.(NetcheckBackend)
		if !ok {
			writeError(w, errorf(http.StatusNotFound, "no local API endpoint %s", r.URL.Path))
			return
		}
		method = http.MethodGet
		serve = func(w http.ResponseWriter, r *http.Request) (any, error) {
			return nb.Netcheck(r.Context())
		}
	case wire.LocalPathEvents:
		method = http.MethodGet // streams its own answer (events.go)
	default:
		if method, serve = h.gatewayEndpoint(r.URL.Path); serve == nil {
			writeError(w, errorf(http.StatusNotFound, "no local API endpoint %s", r.URL.Path))
			return
		}
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
		writeError(w, errorf(http.StatusMethodNotAllowed, "%s takes %s, not %s", r.URL.Path, method, r.Method))
		return
	}
	if serve == nil {
		h.serveEvents(w, r)
		return
	}
	out, err := serve(w, r)
	if err != nil {
		h.log.Info("local API request failed", "path", r.URL.Path, "err", err)
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(out); err != nil {
		h.log.Debug("write local API answer", "err", err)
	}
}

// decode reads one JSON object from the body into v, refusing unknown fields, trailing
// data and bodies over wire.MaxRequestBody. emptyOK accepts an empty body.
func decode(w http.ResponseWriter, r *http.Request, v any, emptyOK bool) error {
	r.Body = http.MaxBytesReader(w, r.Body, wire.MaxRequestBody)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// Exactly one value: anything after it is a malformed request.
		if _, err = dec.Token(); err == io.EOF {
			return nil
		}
		if err == nil {
			return errorf(http.StatusBadRequest, "bad request: data after the JSON object")
		}
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return errorf(http.StatusRequestEntityTooLarge, "request body is over %d bytes", wire.MaxRequestBody)
	case err == io.EOF && emptyOK:
		return nil
	case err == io.EOF:
		return errorf(http.StatusBadRequest, "bad request: empty body")
	}
	return errorf(http.StatusBadRequest, "bad request: %v", err)
}

func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var e *Error
	if errors.As(err, &e) {
		code = e.Code
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(wire.Error{Error: err.Error()})
}
