package broker

import (
	"context"
	"net/http"
	"net/netip"
	"slices"
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
	case req.Version < wire.MinProtocolVersion:
		return nil, errorf(http.StatusBadRequest, "client protocol version %d is older than this broker accepts (%d-%d): upgrade the client",
			req.Version, wire.MinProtocolVersion, wire.ProtocolVersion)
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
	return composeCandidates(remote, listenPort, nil, reported)
}

// composeCandidates returns the device's endpoint candidates, most likely to work from
// anywhere first: the address the request came from with the device's listen port, then
// the usable reflexive (public) ones, then the usable LAN ones, without duplicates.
func composeCandidates(remote string, listenPort int, reflexive, lan []netip.AddrPort) ([]netip.AddrPort, error) {
	if listenPort < 0 || listenPort > 65535 {
		return nil, errorf(http.StatusBadRequest, "listen_port %d is out of range 0-65535", listenPort)
	}
	if len(lan) > maxEndpoints {
		return nil, errorf(http.StatusBadRequest, "%d endpoints reported, the limit is %d", len(lan), maxEndpoints)
	}
	if len(reflexive) > maxEndpoints {
		return nil, errorf(http.StatusBadRequest, "%d reflexive endpoints reported, the limit is %d", len(reflexive), maxEndpoints)
	}
	var observed []netip.AddrPort
	if src, err := netip.ParseAddrPort(remote); err == nil && listenPort > 0 {
		observed = append(observed, netip.AddrPortFrom(src.Addr(), uint16(listenPort)))
	}
	return usableEndpoints(observed, reflexive, lan), nil
}

// usableEndpoints returns the endpoints of lists, in order, that a peer could send to
// (unmapped, without duplicates).
func usableEndpoints(lists ...[]netip.AddrPort) []netip.AddrPort {
	var out []netip.AddrPort
	for _, l := range lists {
		for _, ap := range l {
			a := ap.Addr().Unmap()
			if !ap.IsValid() || ap.Port() == 0 || a.IsUnspecified() || a.IsMulticast() || a.Zone() != "" {
				continue
			}
			if ap = netip.AddrPortFrom(a, ap.Port()); !slices.Contains(out, ap) {
				out = append(out, ap)
			}
		}
	}
	return out
}
