package broker

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/weftmesh/weft/broker/store"
	"github.com/weftmesh/weft/wire"
)

// Admin API paths for relays.
const (
	AdminPathRelays      = "/admin/v1/relays"        // GET [?account=NAME]: []AdminRelay
	AdminPathAddRelay    = "/admin/v1/relays/add"    // POST AdminRelayRequest: AdminRelay
	AdminPathRemoveRelay = "/admin/v1/relays/remove" // POST AdminRemoveRelayRequest: AdminRelay
)

// AdminRelayRequest adds a relay: an account's own (Account set) or a global one
// (Global set), never both.
type AdminRelayRequest struct {
	Account   string   `json:"account,omitempty"`
	Global    bool     `json:"global,omitempty"`
	Name      string   `json:"name"`
	UDP       string   `json:"udp,omitempty"` // HOST:PORT
	TLS       string   `json:"tls,omitempty"` // HOST:PORT
	PublicKey wire.Key `json:"public_key"`
}

// AdminRemoveRelayRequest removes an account's relay (Account set) or a global one.
type AdminRemoveRelayRequest struct {
	Account string `json:"account,omitempty"`
	Global  bool   `json:"global,omitempty"`
	Name    string `json:"name"`
}

// AdminRelay is a relay as an administrator sees it.
type AdminRelay struct {
	Account   string    `json:"account,omitempty"` // "" for a global relay
	Name      string    `json:"name"`
	UDP       string    `json:"udp,omitempty"`
	TLS       string    `json:"tls,omitempty"`
	PublicKey wire.Key  `json:"public_key"`
	Embedded  bool      `json:"embedded,omitempty"` // served by this broker (serve --relay-udp)
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// scope checks that exactly one of account and global names whose relay it is.
func relayScope(account string, global bool) error {
	switch {
	case account != "" && global:
		return errorf(http.StatusBadRequest, "give either an account or global, not both")
	case account == "" && !global:
		return errorf(http.StatusBadRequest, "give an account, or global for a relay of every account")
	}
	return nil
}

func adminRelay(r store.Relay) AdminRelay {
	return AdminRelay{Account: r.Account, Name: r.Name, UDP: r.UDP, TLS: r.TLS, PublicKey: r.PublicKey,
		CreatedAt: r.CreatedAt.UTC()}
}

func (b *Broker) adminListRelays(w http.ResponseWriter, r *http.Request) {
	rs, err := b.store.Relays(r.Context(), r.URL.Query().Get("account"))
	if err != nil {
		b.fail(w, r, err)
		return
	}
	out := make([]AdminRelay, 0, len(rs)+1)
	for _, rl := range rs {
		out = append(out, adminRelay(rl))
	}
	if e, ok := b.embeddedRelay(); ok {
		out = append(out, AdminRelay{Name: e.Name, UDP: e.UDP, TLS: e.TLS, PublicKey: e.PublicKey, Embedded: true})
	}
	writeJSON(w, http.StatusOK, out)
}

func (b *Broker) adminAddRelay(w http.ResponseWriter, r *http.Request) {
	var req AdminRelayRequest
	if err := readJSON(w, r, &req); err != nil {
		b.fail(w, r, err)
		return
	}
	if err := relayScope(req.Account, req.Global); err != nil {
		b.fail(w, r, err)
		return
	}
	if e, ok := b.embeddedRelay(); ok && e.Name == req.Name {
		b.fail(w, r, errorf(http.StatusConflict, "relay %q already exists: it is the broker's embedded relay", req.Name))
		return
	}
	b.writeMu.Lock()
	rl, err := b.store.AddRelay(r.Context(), store.RelaySpec{Account: req.Account, Name: req.Name,
		UDP: req.UDP, TLS: req.TLS, PublicKey: req.PublicKey})
	if err == nil {
		err = b.pushRelays(r.Context(), rl.AccountID)
	}
	b.writeMu.Unlock()
	if err != nil {
		b.fail(w, r, err)
		return
	}
	b.log.Info("relay added", "account", rl.Account, "name", rl.Name, "udp", rl.UDP, "tls", rl.TLS)
	writeJSON(w, http.StatusOK, adminRelay(rl))
}

func (b *Broker) adminRemoveRelay(w http.ResponseWriter, r *http.Request) {
	var req AdminRemoveRelayRequest
	if err := readJSON(w, r, &req); err != nil {
		b.fail(w, r, err)
		return
	}
	if err := relayScope(req.Account, req.Global); err != nil {
		b.fail(w, r, err)
		return
	}
	b.writeMu.Lock()
	rl, err := b.store.RemoveRelay(r.Context(), req.Account, req.Name)
	if err == nil {
		err = b.pushRelays(r.Context(), rl.AccountID)
	}
	b.writeMu.Unlock()
	if err != nil {
		b.fail(w, r, err)
		return
	}
	b.log.Info("relay removed", "account", rl.Account, "name", rl.Name)
	writeJSON(w, http.StatusOK, adminRelay(rl))
}

// relaysFor is the relay list of an account's devices, best first: the account's own,
// then the global ones, then the broker's embedded relay. Never nil, so that an empty
// list is sent as "relays":[].
func (b *Broker) relaysFor(ctx context.Context, accountID int64) ([]wire.RelayInfo, error) {
	rs, err := b.store.AccountRelays(ctx, accountID)
	if err != nil {
		return nil, err
	}
	out := make([]wire.RelayInfo, 0, len(rs)+1)
	for _, r := range rs {
		out = append(out, wire.RelayInfo{Name: r.Name, UDP: r.UDP, TLS: r.TLS, PublicKey: r.PublicKey, Private: !r.Global()})
	}
	if e, ok := b.embeddedRelay(); ok {
		out = append(out, e)
	}
	return out, nil
}

// pushRelays sends the current relay list to every live stream of account, or of
// every account if it is 0 (a global relay changed). The caller holds writeMu, so the
// list cannot go out of order with a full map built meanwhile.
func (b *Broker) pushRelays(ctx context.Context, account int64) error {
	accounts := []int64{account}
	if account == 0 {
		accounts = b.hub.LoadedAccounts()
	}
	for _, id := range accounts {
		rs, err := b.relaysFor(ctx, id)
		if err != nil {
			return err
		}
		b.hub.Broadcast(id, wire.MapUpdate{Relays: rs})
	}
	return nil
}

// AddRelay adds a relay and returns it as stored.
func (c *AdminClient) AddRelay(ctx context.Context, req AdminRelayRequest) (AdminRelay, error) {
	var r AdminRelay
	err := c.do(ctx, http.MethodPost, AdminPathAddRelay, req, &r)
	return r, err
}

// RemoveRelay removes a relay and returns what it was.
func (c *AdminClient) RemoveRelay(ctx context.Context, req AdminRemoveRelayRequest) (AdminRelay, error) {
	var r AdminRelay
	err := c.do(ctx, http.MethodPost, AdminPathRemoveRelay, req, &r)
	return r, err
}

// Relays lists the relays the account's devices may use, or every relay if account is "".
func (c *AdminClient) Relays(ctx context.Context, account string) ([]AdminRelay, error) {
	path := AdminPathRelays
	if account != "" {
		path += "?account=" + url.QueryEscape(account)
	}
	var out []AdminRelay
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}
