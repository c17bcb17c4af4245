package broker

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/broker/store"
	"github.com/weftmesh/weft/internal/dnsname"
	"github.com/weftmesh/weft/wire"
)

const (
	// maxPendingLogins bounds the logins held in memory at once.
	maxPendingLogins = 1000
	// maxLoginFailures is how many wrong passwords one login URL takes before it is dead.
	maxLoginFailures = 10
	// loginGrace keeps an ended login around after it expires, so a waiting device hears
	// "expired" rather than "unknown".
	loginGrace = time.Minute
	// Per source address: login starts and sign-in attempts, each a burst then one per refill.
	ipBurst  = 10
	ipRefill = 6 * time.Second
)

// loginFlow runs browser logins: a device starts one and waits; a person signs in on the
// one-time page; the device is then registered as POST /v1/register would. Logins live in
// memory only: a broker restart makes devices start again.
type loginFlow struct {
	b           *Broker
	now         func() time.Time
	waitTimeout time.Duration // how long a wait is held before answering "pending"
	csrfKey     []byte        // binds each page's CSRF token to its session cookie
	ipLimit     *limiter      // starts and sign-ins per source address

	mu      sync.Mutex
	byID    map[string]*login   // guarded by mu
	byToken map[[32]byte]*login // by SHA-256 of the device's token; guarded by mu
}

// login is one browser login. Its fields below spec are guarded by loginFlow.mu.
type login struct {
	id        string
	tokenHash [32]byte
	spec      store.DeviceSpec
	expires   time.Time

	state    loginState
	device   wire.Device // set in loginDone
	failure  string      // set in loginFailed
	failures int         // wrong passwords so far
	busy     bool        // a sign-in is being checked
	ended    chan struct{}

	// session is set for a login that issues an account session instead of registering
	// a device (usersession.go); spec is then empty.
	session *sessionLogin
}

type loginState int

const (
	loginPending loginState = iota
	loginDone
	loginFailed
)

func newLoginFlow(b *Broker, now func() time.Time, waitTimeout time.Duration) *loginFlow {
	key := make([]byte, 32)
	rand.Read(key)
	return &loginFlow{
		b: b, now: now, waitTimeout: waitTimeout, csrfKey: key,
		ipLimit: newLimiter(ipBurst, ipRefill, now),
		byID:    make(map[string]*login),
		byToken: make(map[[32]byte]*login),
	}
}

// routes adds the login endpoints and page to mux.
func (f *loginFlow) routes(mux *http.ServeMux) {
	mux.Handle(wire.PathLoginStart, route(http.MethodPost, f.handleStart))
	mux.Handle(wire.PathLoginWait, route(http.MethodPost, f.handleWait))
	mux.HandleFunc(wire.PathLoginPage+"{id}", f.handlePage)
	f.sessionRoutes(mux) // the same page, issuing account sessions (usersession.go)
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sourceIP is the address a request came from, for rate limits.
func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (f *loginFlow) allowIP(w http.ResponseWriter, r *http.Request, what string) bool {
	ok, wait := f.ipLimit.Allow(what + "\x00" + sourceIP(r))
	if !ok {
		w.Header().Set("Retry-After", retryAfter(wait))
	}
	return ok
}

func (f *loginFlow) handleStart(w http.ResponseWriter, r *http.Request) {
	var req wire.LoginStartRequest
	if err := readJSON(w, r, &req); err != nil {
		f.b.fail(w, r, err)
		return
	}
	spec, err := validateLoginStart(req, r.RemoteAddr)
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
		spec:      spec,
		expires:   f.now().Add(wire.LoginTTL),
		ended:     make(chan struct{}),
	}
	f.mu.Lock()
	f.sweepLocked()
	if len(f.byID) >= maxPendingLogins {
		f.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "too many logins in progress; try again in a few minutes")
		return
	}
	// One login per device key: a device that starts again has lost the old one.
	for _, old := range f.byID {
		if old.spec.PublicKey == spec.PublicKey && old.state == loginPending {
			f.endLocked(old, loginFailed, "replaced by a newer login of the same device")
		}
	}
	f.byID[l.id] = l
	f.byToken[l.tokenHash] = l
	f.mu.Unlock()
	f.b.log.Info("browser login started", "device", spec.Name, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, wire.LoginStartResponse{
		LoginURL: "https://" + r.Host + wire.PathLoginPage + l.id,
		Token:    token,
		Expires:  l.expires,
	})
}

// validateLoginStart checks a login request as validateRegister checks a registration.
func validateLoginStart(req wire.LoginStartRequest, remote string) (store.DeviceSpec, error) {
	switch {
	case req.Version == 0:
		return store.DeviceSpec{}, errorf(http.StatusBadRequest, "version is missing: this broker speaks protocol version %d", wire.ProtocolVersion)
	case req.Version > wire.ProtocolVersion:
		return store.DeviceSpec{}, errorf(http.StatusBadRequest, "client protocol version %d is newer than this broker's (%d): upgrade the broker",
			req.Version, wire.ProtocolVersion)
	case req.PublicKey.IsZero():
		return store.DeviceSpec{}, errorf(http.StatusBadRequest, "public_key is missing")
	}
	if err := dnsname.ValidLabel(req.Name); err != nil {
		return store.DeviceSpec{}, errorf(http.StatusBadRequest, "device %v", err)
	}
	eps, err := composeEndpoints(remote, req.ListenPort, req.Endpoints)
	if err != nil {
		return store.DeviceSpec{}, err
	}
	return store.DeviceSpec{PublicKey: req.PublicKey, Name: req.Name, ListenPort: req.ListenPort, Endpoints: eps}, nil
}

func (f *loginFlow) handleWait(w http.ResponseWriter, r *http.Request) {
	l, ok := f.await(w, r, false, "start the login again")
	if !ok {
		return
	}
	state, dev, failure := l.state, l.device, l.failure
	f.mu.Unlock()
	switch state {
	case loginDone:
		writeJSON(w, http.StatusOK, wire.LoginWaitResponse{Device: &dev})
	case loginFailed:
		writeError(w, http.StatusGone, failure)
	default:
		writeJSON(w, http.StatusOK, wire.LoginWaitResponse{})
	}
}

// await is the long poll both kinds of login share: it finds the pending login named by
// the request's token (a session login if session), waits until it ends or the poll times
// out, and returns with f.mu held so the caller reads the outcome consistently. ok is false
// when it already answered (bad request, unknown login; again tells the client what to do)
// or the client went away.
func (f *loginFlow) await(w http.ResponseWriter, r *http.Request, session bool, again string) (l *login, ok bool) {
	var req wire.LoginWaitRequest
	if err := readJSON(w, r, &req); err != nil {
		f.b.fail(w, r, err)
		return nil, false
	}
	f.mu.Lock()
	f.sweepLocked()
	l = f.byToken[sha256.Sum256([]byte(req.Token))]
	f.mu.Unlock()
	if l == nil || (l.session != nil) != session {
		writeError(w, http.StatusNotFound, "no such login: it expired or the broker restarted; "+again)
		return nil, false
	}
	timer := time.NewTimer(f.waitTimeout)
	defer timer.Stop()
	select {
	case <-l.ended:
	case <-timer.C:
	case <-r.Context().Done():
		return nil, false
	}
	f.mu.Lock()
	f.expireLocked(l)
	return l, true
}

// lookup returns the login with id, brought up to date with the clock, or nil.
func (f *loginFlow) lookup(id string) *login {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sweepLocked()
	l := f.byID[id]
	if l != nil {
		f.expireLocked(l)
	}
	return l
}

// expireLocked fails a pending login whose time is up.
func (f *loginFlow) expireLocked(l *login) {
	if l.state == loginPending && !f.now().Before(l.expires) {
		f.endLocked(l, loginFailed, "the login link expired before anyone signed in; start the login again")
	}
}

// endLocked moves a pending login to its final state and wakes its waiter.
func (f *loginFlow) endLocked(l *login, s loginState, failure string) {
	if l.state != loginPending {
		return
	}
	l.state, l.failure = s, failure
	close(l.ended)
}

// sweepLocked forgets logins past their expiry and grace.
func (f *loginFlow) sweepLocked() {
	cutoff := f.now().Add(-loginGrace)
	for id, l := range f.byID {
		if l.expires.Before(cutoff) {
			f.endLocked(l, loginFailed, "expired")
			delete(f.byID, id)
			delete(f.byToken, l.tokenHash)
		}
	}
}

// csrfToken is the form token for login id in the browser holding session cookie value.
func (f *loginFlow) csrfToken(id, session string) string {
	m := hmac.New(sha256.New, f.csrfKey)
	m.Write([]byte(id))
	m.Write([]byte{0})
	m.Write([]byte(session))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (f *loginFlow) csrfValid(id, session, token string) bool {
	if session == "" || token == "" {
		return false
	}
	return hmac.Equal([]byte(f.csrfToken(id, session)), []byte(token))
}

var errLoginBusy = errors.New("a sign-in for this link is already being checked")

// begin claims a pending login for one sign-in attempt; finish releases it.
func (f *loginFlow) begin(l *login) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expireLocked(l)
	switch {
	case l.state != loginPending:
		return errLoginEnded
	case l.busy:
		return errLoginBusy
	}
	l.busy = true
	return nil
}

var errLoginEnded = errors.New("login ended")

// wrongPassword counts a failed sign-in, killing the login after maxLoginFailures.
func (f *loginFlow) wrongPassword(l *login) (dead bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l.busy = false
	l.failures++
	if l.failures >= maxLoginFailures {
		f.endLocked(l, loginFailed, "too many wrong passwords on the login page; start the login again")
		return true
	}
	return false
}

// release ends an attempt that neither signed in nor counted as a wrong password.
func (f *loginFlow) release(l *login) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l.busy = false
}

// complete registers the login's device in account for the user with email, exactly as a
// password registration would, and ends the login either way.
func (f *loginFlow) complete(r *http.Request, l *login, account int64, email string) (wire.Device, error) {
	b := f.b
	spec := l.spec
	// Keep in step with handleRegister's spec: the same rules must apply.
	spec.User, spec.Online = strings.ToLower(email), b.hub.Online
	b.writeMu.Lock()
	res, err := b.store.RegisterInAccount(r.Context(), account, spec)
	if err == nil {
		err = b.publishRegistration(r.Context(), res)
	}
	b.writeMu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	l.busy = false
	if err != nil {
		_, msg := b.statusOf(err)
		f.endLocked(l, loginFailed, "the broker could not register the device: "+msg)
		return wire.Device{}, err
	}
	d := b.wireDevice(res.Device)
	l.device = d
	f.endLocked(l, loginDone, "")
	b.log.Info("device registered by browser login", "account", d.Account, "device", d.Name, "id", d.ID,
		"address", d.Address, "new", res.Created, "rekeyed", !res.ReplacedKey.IsZero())
	return d, nil
}
