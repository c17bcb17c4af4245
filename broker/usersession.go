package broker

import (
	"crypto/sha256"
	"net/http"
	"strings"

	"github.com/weftmesh/weft/broker/store"
	"github.com/weftmesh/weft/wire"
)

// sessionLogin is what a browser login for an account session carries: the user who
// signed in on the page, until the waiting client collects the session. Guarded by
// loginFlow.mu like the rest of its login.
type sessionLogin struct {
	accountID int64  // set once the person signed in
	email     string // as they typed it
	collected bool   // the session was handed to a waiter; it is handed out once
}

// sessionRoutes adds the account-session login endpoints; the page is the login page.
func (f *loginFlow) sessionRoutes(mux *http.ServeMux) {
	mux.Handle(wire.PathSessionStart, route(http.MethodPost, f.handleSessionStart))
	mux.Handle(wire.PathSessionWait, route(http.MethodPost, f.handleSessionWait))
}

// handleSessionStart begins a browser login that issues an account session. Nothing in
// the request says who will sign in: whoever signs in on the page, the session is theirs.
func (f *loginFlow) handleSessionStart(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err == nil && len(body) != 0 {
		err = decodeStrict(body, &struct{}{})
	}
	if err != nil {
		f.b.fail(w, r, err)
		return
	}
	if !f.allowIP(w, r, "start") {
		writeError(w, http.StatusTooManyRequests, "too many logins started from this address; try again later")
		return
	}
	token := randomString(32)
	l := &login{
		id:        randomString(16),
		tokenHash: sha256.Sum256([]byte(token)),
		expires:   f.now().Add(wire.LoginTTL),
		ended:     make(chan struct{}),
		session:   &sessionLogin{},
	}
	f.mu.Lock()
	f.sweepLocked()
	if len(f.byID) >= maxPendingLogins {
		f.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "too many logins in progress; try again in a few minutes")
		return
	}
	f.byID[l.id] = l
	f.byToken[l.tokenHash] = l
	f.mu.Unlock()
	f.b.log.Info("account session login started", "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, wire.LoginStartResponse{
		LoginURL: "https://" + r.Host + wire.PathLoginPage + l.id,
		Token:    token,
		Expires:  l.expires,
	})
}

// handleSessionWait answers like handleWait; once the person signed in, the first wait
// gets a new session's token, and later ones 410.
func (f *loginFlow) handleSessionWait(w http.ResponseWriter, r *http.Request) {
	l, ok := f.await(w, r, true, "log in again")
	if !ok {
		return
	}
	state, failure, sl := l.state, l.failure, *l.session
	claimed := state == loginDone && !l.session.collected
	if claimed {
		l.session.collected = true
	}
	f.mu.Unlock()
	switch {
	case state == loginFailed:
		writeError(w, http.StatusGone, failure)
		return
	case state != loginDone:
		writeJSON(w, http.StatusOK, wire.SessionWaitResponse{})
		return
	case !claimed:
		writeError(w, http.StatusGone, "the session of this login was already handed out; log in again")
		return
	}
	token, sess, err := f.b.store.CreateSession(r.Context(), sl.accountID, sl.email, wire.SessionTTL)
	if err != nil {
		f.mu.Lock()
		l.session.collected = false // let the client ask again
		f.mu.Unlock()
		f.b.fail(w, r, err)
		return
	}
	f.b.log.Info("account session issued", "account", sess.Account, "email", sess.Email, "admin", sess.Admin)
	me := accountMe(sess)
	writeJSON(w, http.StatusOK, wire.SessionWaitResponse{Session: token, Me: &me})
}

// completeSession ends a session login for the user who just signed in on its page; the
// waiting client then collects the session. The caller claimed the login with begin.
func (f *loginFlow) completeSession(w http.ResponseWriter, l *login, acct store.Account, email string) {
	f.mu.Lock()
	l.busy = false
	l.session.accountID, l.session.email = acct.ID, strings.ToLower(email)
	f.endLocked(l, loginDone, "")
	f.mu.Unlock()
	f.b.log.Info("account session login signed in", "account", acct.Name, "email", strings.ToLower(email))
	renderPage(w, http.StatusOK, page{Title: "Signed in", Heading: "You are signed in", Success: true,
		Message: "The weft tray is now logged in to the account " + acct.Name + " as " + strings.ToLower(email) + ". You can close this page."})
}

// sessionEndedPage explains why a session login URL no longer works.
func sessionEndedPage(w http.ResponseWriter, l *login) {
	if l.state == loginDone {
		messagePage(w, http.StatusGone, "Link already used",
			"Someone already signed in with this login link, and a login link works only once. To log in again, choose “Log in to your account…” in the weft tray.")
		return
	}
	messagePage(w, http.StatusGone, "Login link no longer valid",
		"This login link has ended: "+l.failure+". Choose “Log in to your account…” in the weft tray again.")
}

// accountMe is how a session describes itself to its holder.
func accountMe(s store.Session) wire.AccountMe {
	return wire.AccountMe{Email: s.Email, Account: s.Account, Admin: s.Admin, Expires: s.ExpiresAt.UTC()}
}
