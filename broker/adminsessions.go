package broker

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/weftmesh/weft/broker/store"
)

// Admin API paths for account sessions.
const (
	AdminPathSessions       = "/admin/v1/sessions"        // GET ?account=NAME[&email=EMAIL]: []AdminSession
	AdminPathRevokeSessions = "/admin/v1/sessions/revoke" // POST AdminRevokeSessionsRequest: []AdminSession
)

// AdminSession is a live account session as an administrator sees it: never its token
// or the token's hash.
type AdminSession struct {
	ID        string    `json:"id"`
	Account   string    `json:"account"`
	Email     string    `json:"email"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	LastUsed  time.Time `json:"last_used,omitzero"` // recorded at most once a minute; absent if never used
}

// AdminRevokeSessionsRequest revokes one session of the account, by ID or a unique
// prefix of it (Session), or every live session of a user (Email): exactly one of them.
type AdminRevokeSessionsRequest struct {
	Account string `json:"account"`
	Session string `json:"session,omitempty"`
	Email   string `json:"email,omitempty"`
}

func adminSession(s store.Session) AdminSession {
	return AdminSession{ID: s.ID, Account: s.Account, Email: s.Email,
		CreatedAt: s.CreatedAt.UTC(), ExpiresAt: s.ExpiresAt.UTC(), LastUsed: s.LastUsed.UTC()}
}

func adminSessions(ss []store.Session) []AdminSession {
	out := make([]AdminSession, 0, len(ss))
	for _, s := range ss {
		out = append(out, adminSession(s))
	}
	return out
}

func (b *Broker) adminListSessions(w http.ResponseWriter, r *http.Request) {
	account, ok := b.accountParam(w, r)
	if !ok {
		return
	}
	ss, err := b.store.AccountSessions(r.Context(), account, r.URL.Query().Get("email"))
	if err != nil {
		b.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, adminSessions(ss))
}

// adminRevokeSessions ends sessions at once: the account API reads the revocation on
// every request.
func (b *Broker) adminRevokeSessions(w http.ResponseWriter, r *http.Request) {
	var req AdminRevokeSessionsRequest
	if err := readJSON(w, r, &req); err != nil {
		b.fail(w, r, err)
		return
	}
	if req.Account == "" || (req.Session == "") == (req.Email == "") {
		b.fail(w, r, errorf(http.StatusBadRequest, "account is needed, and either a session ID or a user's email (not both)"))
		return
	}
	var revoked []store.Session
	if req.Session != "" {
		s, err := b.store.RevokeSessionID(r.Context(), req.Account, req.Session)
		if err != nil {
			b.fail(w, r, err)
			return
		}
		revoked = []store.Session{s}
	} else {
		var err error
		if revoked, err = b.store.RevokeUserSessions(r.Context(), req.Account, req.Email); err != nil {
			b.fail(w, r, err)
			return
		}
	}
	for _, s := range revoked {
		b.log.Info("account session revoked by administrator", "account", s.Account, "email", s.Email, "session", s.ID)
	}
	writeJSON(w, http.StatusOK, adminSessions(revoked))
}

// Sessions lists the live account sessions of an account, or of one user of it when
// email is not "".
func (c *AdminClient) Sessions(ctx context.Context, account, email string) ([]AdminSession, error) {
	q := url.Values{"account": {account}}
	if email != "" {
		q.Set("email", email)
	}
	var out []AdminSession
	err := c.do(ctx, http.MethodGet, AdminPathSessions+"?"+q.Encode(), nil, &out)
	return out, err
}

// RevokeSessions revokes one session or all of a user's (see AdminRevokeSessionsRequest)
// and returns those it revoked; they stop working at once.
func (c *AdminClient) RevokeSessions(ctx context.Context, req AdminRevokeSessionsRequest) ([]AdminSession, error) {
	var out []AdminSession
	err := c.do(ctx, http.MethodPost, AdminPathRevokeSessions, req, &out)
	return out, err
}
