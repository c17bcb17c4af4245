package broker

import (
	"context"
	"net/http"
	"net/netip"
	"strings"

	"github.com/weftmesh/weft/broker/store"
	"github.com/weftmesh/weft/internal/dnsname"
	"github.com/weftmesh/weft/wire"
)

// maxEndpoints is how many endpoints a device may report.
const maxEndpoints = 32

func (b *Broker) handleRegister(w http.ResponseWriter, r *http.Request) {
	var req wire.RegisterRequest
	if err := readJSON(w, r, &req); err != nil {
		b.fail(w, r, err)
		return
	}
	eps, err := validateRegister(&req, r.RemoteAddr)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	spec := store.DeviceSpec{PublicKey: req.PublicKey, Name: req.Name, ListenPort: req.ListenPort, Endpoints: eps,
		Online: b.hub.Online}

	var account int64
	if req.AuthKey == "" {
		// Password check first and outside writeMu: argon2id is slow on purpose.
		if ok, wait := b.limiter.Allow(req.Account + "\x00" + strings.ToLower(req.Email)); !ok {
			w.Header().Set("Retry-After", retryAfter(wait))
			writeError(w, http.StatusTooManyRequests, "too many password attempts for this account and email; try again in "+retryAfter(wait)+" s")
			return
		}
		a, err := b.store.CheckPassword(r.Context(), req.Account, req.Email, req.Password)
		if err != nil {
			b.fail(w, r, err)
			return
		}
		account = a.ID
		spec.User = strings.ToLower(req.Email)
	}

	b.writeMu.Lock()
	var res store.RegisterResult
	if req.AuthKey != "" {
		res, err = b.store.RegisterWithAuthKey(r.Context(), req.AuthKey, spec)
	} else {
		res, err = b.store.RegisterInAccount(r.Context(), account, spec)
	}
	if err == nil {
		err = b.publishRegistration(r.Context(), res)
	}
	b.writeMu.Unlock()
	if err != nil {
		b.fail(w, r, err)
		return
	}
	d := b.wireDevice(res.Device)
	b.log.Info("device registered", "account", d.Account, "device", d.Name, "id", d.ID,
		"address", d.Address, "new", res.Created, "rekeyed", !res.ReplacedKey.IsZero())
	writeJSON(w, http.StatusOK, wire.RegisterResponse{Device: d})
}

// publishRegistration tells the hub about a registration; the caller holds writeMu.
func (b *Broker) publishRegistration(ctx context.Context, res store.RegisterResult) error {
	d := res.Device
	if !res.ReplacedKey.IsZero() {
		b.hub.Revoke(d.AccountID, d.ID, res.ReplacedKey, "replaced by a new registration of "+d.Name)
	}
	return b.refresh(ctx, d.AccountID)
}

// validateRegister checks a registration request and returns the device's endpoints.
func validateRegister(req *wire.RegisterRequest, remote string) ([]netip.AddrPort, error) {
	switch {
	case req.Version == 0:
		return nil, errorf(http.StatusBadRequest, "version is missing: this broker speaks protocol version %d", wire.ProtocolVersion)
	case req.Version > wire.ProtocolVersion:
		return nil, errorf(http.StatusBadRequest, "client protocol version %d is newer than this broker's (%d): upgrade the broker",
			req.Version, wire.ProtocolVersion)
	case req.PublicKey.IsZero():
		return nil, errorf(http.StatusBadRequest, "public_key is missing")
	}
	if err := dnsname.ValidLabel(req.Name); err != nil {
		return nil, errorf(http.StatusBadRequest, "device %v", err)
	}
	hasPassword := req.Account != "" || req.Email != "" || req.Password != ""
	switch {
	case req.AuthKey != "" && hasPassword:
		return nil, errorf(http.StatusBadRequest, "give either auth_key or account, email and password, not both")
	case req.AuthKey == "" && (req.Account == "" || req.Email == "" || req.Password == ""):
		return nil, errorf(http.StatusBadRequest, "give either auth_key or all of account, email and password")
	}
	return composeEndpoints(remote, req.ListenPort, req.Endpoints)
}

// composeEndpoints returns the device's endpoint candidates: the address the request
// came from with the device's listen port first, then the usable reported ones,
// without duplicates.
func composeEndpoints(remote string, listenPort int, reported []netip.AddrPort) ([]netip.AddrPort, error) {
	if listenPort < 0 || listenPort > 65535 {
		return nil, errorf(http.StatusBadRequest, "listen_port %d is out of range 0-65535", listenPort)
	}
	if len(reported) > maxEndpoints {
		return nil, errorf(http.StatusBadRequest, "%d endpoints reported, the limit is %d", len(reported), maxEndpoints)
	}
	var out []netip.AddrPort
	add := func(ap netip.AddrPort) {
		a := ap.Addr().Unmap()
		if !ap.IsValid() || ap.Port() == 0 || a.IsUnspecified() || a.IsMulticast() || a.Zone() != "" {
			return // unusable by a peer
		}
		ap = netip.AddrPortFrom(a, ap.Port())
		for _, have := range out {
			if have == ap {
				return
			}
		}
		out = append(out, ap)
	}
	if src, err := netip.ParseAddrPort(remote); err == nil && listenPort > 0 {
		add(netip.AddrPortFrom(src.Addr(), uint16(listenPort)))
	}
	for _, ap := range reported {
		add(ap)
	}
	return out, nil
}
