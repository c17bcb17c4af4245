// Package ipc carries weftd's local API over a Unix socket (a named pipe on Windows) and admits only privileged local callers.
package ipc

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/weftmesh/weft/wire"
)

// GroupName is the group whose members may use weftd's local API besides root and
// the daemon's own user.
const GroupName = "weft"

// DeniedMessage is the error a refused caller reads.
const DeniedMessage = "permission denied: weftd's socket is for root and members of group weft"

type admissionKey struct{}

// admission is the verdict on one connection's peer, taken once when it is accepted.
type admission struct {
	err error // nil: the peer may use the API
}

// NewServer returns an http.Server that serves h only to callers whose credentials the
// socket admits (see Listen); others get 403 with DeniedMessage and the connection closes.
// The credentials are read once per connection, when it is accepted.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	if log == nil {
		log = slog.Default()
	}
	return &http.Server{
		Handler: admit(h, log),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, admissionKey{}, admission{err: checkPeer(c)})
		},
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// admit refuses requests on connections whose peer was not admitted. A request
// without a verdict (a server not built by NewServer) is refused too: fail closed.
func admit(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := r.Context().Value(admissionKey{}).(admission)
		if ok && a.err == nil {
			next.ServeHTTP(w, r)
			return
		}
		if ok {
			log.Warn("local API caller refused", "err", a.err)
		} else {
			log.Error("local API request without peer credentials; refusing")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(wire.Error{Error: DeniedMessage})
	})
}
