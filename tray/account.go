package tray

import (
	"context"
	"errors"
	"time"

	"github.com/weftmesh/weft/wire"
)

const (
	// sessionRecheck is how often the tray asks the broker who its session is (the role
	// can change, the session can be logged out elsewhere).
	sessionRecheck = 5 * time.Minute
	// sessionRetry is the wait after the broker could not be asked.
	sessionRetry = 30 * time.Second
	// loginRetry is the pause after a failed wait for a session login.
	loginRetry = 2 * time.Second
)

// ErrSessionEnded is wrapped by AccountAPI errors for a session token the broker no
// longer takes (expired, logged out, never issued): the tray forgets it.
var ErrSessionEnded = errors.New("account session ended")

// ErrLoginEnded is wrapped by WaitSession's error when the login can never complete
// (expired, too many wrong passwords, unknown to the broker).
var ErrLoginEnded = errors.New("account login ended")

// AccountAPI is the broker's account API for the person using the tray, at the broker of
// this device; *AccountClient implements it. With a nil AccountAPI the tray offers no
// account login and no admin items.
type AccountAPI interface {
	// StartSession begins a browser login for an account session.
	StartSession(ctx context.Context) (wire.LoginStartResponse, error)
	// WaitSession waits a while (long poll) for the login with poll token poll; a zero
	// answer means still pending.
	WaitSession(ctx context.Context, poll string) (wire.SessionWaitResponse, error)
	// Me describes the session token authenticates.
	Me(ctx context.Context, token string) (wire.AccountMe, error)
	// RemoveDevice removes a device of the account (administrators only).
	RemoveDevice(ctx context.Context, token, device string) error
	// EndSession logs the session out at the broker.
	EndSession(ctx context.Context, token string) error
}

// accountState is the session behind State.Session; guarded by App.mu.
type accountState struct {
	broker  string    // the broker token is for; "" until the device is in a mesh
	token   string    // the session token; "" for none
	loaded  bool      // the keyring was read for broker
	loadAt  time.Time // when to try the keyring again after it failed
	checked string    // the token the broker last described (State.Session)
	due     time.Time // when to ask the broker about it again

	// A browser login for a session, waiting for the person to sign in.
	poll       string // its poll token; "" for none
	pollBroker string
	pollEnds   time.Time
}

// wakeAccount asks watchAccount to look at the session now.
func (a *App) wakeAccount() {
	select {
	case a.acctWake <- struct{}{}:
	default:
	}
}

// watchAccount keeps State.Session current: it loads the session from the keyring when
// the device's broker is known, asks the broker about it now and then, and follows a
// waiting session login until it ends.
func (a *App) watchAccount(ctx context.Context) {
	for ctx.Err() == nil {
		if a.loginPending() {
			a.waitSessionLogin(ctx)
			continue
		}
		next := a.checkAccount(ctx)
		select {
		case <-ctx.Done():
		case <-a.acctWake:
		case <-time.After(next):
		}
	}
}

func (a *App) loginPending() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.acct.poll != ""
}

// checkAccount brings the session up to date if that is due, and says when to look again.
func (a *App) checkAccount(ctx context.Context) time.Duration {
	s := a.Snapshot()
	broker := ""
	if isMember(s) {
		broker = s.Status.Broker
	}
	now := time.Now()
	a.mu.Lock()
	if broker == "" {
		// weftd away or the device in no mesh: keep what there is for when it is back.
		a.mu.Unlock()
		return sessionRecheck
	}
	if broker != a.acct.broker {
		// Another broker: sessions are per broker.
		a.acct = accountState{broker: broker, poll: a.acct.poll, pollBroker: a.acct.pollBroker, pollEnds: a.acct.pollEnds}
	}
	load := !a.acct.loaded && a.sessions != nil && !now.Before(a.acct.loadAt)
	a.mu.Unlock()

	if load {
		tok, ok, err := a.sessions.Load(broker)
		a.mu.Lock()
		if err != nil {
			a.log.Info("no keyring for the account session: logging in will last until weft tray quits", "err", err)
			a.acct.loadAt = now.Add(sessionRecheck)
		} else if a.acct.broker == broker {
			a.acct.loaded = true
			if ok && a.acct.token == "" {
				a.acct.token = tok
			}
		}
		a.mu.Unlock()
	}

	a.mu.Lock()
	token := a.acct.token
	due := token != a.acct.checked || !now.Before(a.acct.due)
	wait := time.Until(a.acct.due)
	a.mu.Unlock()
	if token == "" {
		if s.Session != nil {
			a.update(func(s *State) { s.Session = nil })
		}
		return sessionRecheck
	}
	if !due {
		return wait
	}
	me, err := a.account.Me(ctx, token)
	switch {
	case err == nil:
		a.mu.Lock()
		if a.acct.token == token {
			a.acct.checked, a.acct.due = token, time.Now().Add(sessionRecheck)
		}
		a.mu.Unlock()
		a.update(func(s *State) { s.Session = &me })
		return sessionRecheck
	case errors.Is(err, ErrSessionEnded):
		a.log.Info("account session ended", "err", err)
		a.forgetSession(broker, token)
		a.notify("Logged out of your account: " + oneLine(err))
		return sessionRecheck
	}
	if ctx.Err() == nil {
		a.log.Info("could not ask the broker about the account session", "err", err)
	}
	a.mu.Lock()
	a.acct.due = time.Now().Add(sessionRetry)
	a.mu.Unlock()
	return sessionRetry
}

// forgetSession drops token (the session for broker) from memory, the keyring and the
// menu — the menu last, so that once it says "logged out" the token is gone for good.
func (a *App) forgetSession(broker, token string) {
	a.mu.Lock()
	if a.acct.token == token {
		a.acct.token, a.acct.checked = "", ""
	}
	a.mu.Unlock()
	if a.sessions != nil && broker != "" {
		if err := a.sessions.Delete(broker); err != nil {
			a.log.Warn("forget the account session", "err", err)
		}
	}
	a.update(func(s *State) { s.Session = nil })
}

// startSessionLogin starts a browser login for an account session and opens its page;
// watchAccount waits for it.
func (a *App) startSessionLogin(ctx context.Context, busy func(string) func()) error {
	s := a.Snapshot()
	if s.SessionURL != "" {
		a.openURL(s.SessionURL)
		return nil
	}
	if !isMember(s) || s.Status.Broker == "" {
		return errors.New("this device is in no mesh yet: log it in first")
	}
	done := busy("starting the account login…")
	res, err := a.account.StartSession(ctx)
	done()
	if err != nil {
		return err
	}
	ends := res.Expires
	if ends.IsZero() || ends.After(time.Now().Add(wire.LoginTTL)) {
		ends = time.Now().Add(wire.LoginTTL)
	}
	a.mu.Lock()
	a.acct.poll, a.acct.pollBroker, a.acct.pollEnds = res.Token, s.Status.Broker, ends
	a.mu.Unlock()
	a.update(func(s *State) { s.SessionURL = res.LoginURL })
	a.wakeAccount()
	a.openURL(res.LoginURL)
	return nil
}

// waitSessionLogin waits once for the pending session login and takes its outcome.
func (a *App) waitSessionLogin(ctx context.Context) {
	a.mu.Lock()
	poll, broker, ends := a.acct.poll, a.acct.pollBroker, a.acct.pollEnds
	a.mu.Unlock()
	if time.Now().After(ends) {
		a.endSessionLogin("the login link expired before anyone signed in")
		return
	}
	asked := time.Now()
	res, err := a.account.WaitSession(ctx, poll)
	switch {
	case ctx.Err() != nil:
	case err == nil && res.Session == "":
		// Still waiting for the person. The broker holds a wait open for a while; one that
		// answers at once is not asked again in a tight loop.
		select {
		case <-ctx.Done():
		case <-time.After(loginRetry - time.Since(asked)):
		}
	case err == nil:
		a.sessionIssued(broker, res)
	case errors.Is(err, ErrLoginEnded):
		a.endSessionLogin(oneLine(err))
	default:
		a.log.Info("wait for the account login", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(loginRetry):
		}
	}
}

// endSessionLogin gives up the pending session login, saying why.
func (a *App) endSessionLogin(why string) {
	a.mu.Lock()
	a.acct.poll = ""
	a.mu.Unlock()
	a.update(func(s *State) { s.SessionURL = "" })
	a.notify("Account login failed: " + why)
}

// sessionIssued keeps the session a completed login issued: in the keyring, else in
// memory only.
func (a *App) sessionIssued(broker string, res wire.SessionWaitResponse) {
	var saveErr error
	if a.sessions == nil {
		saveErr = errors.New("no keyring")
	} else {
		saveErr = a.sessions.Save(broker, res.Session)
	}
	a.mu.Lock()
	a.acct.poll = ""
	if a.acct.broker == "" || a.acct.broker == broker {
		a.acct.broker, a.acct.token = broker, res.Session
		if res.Me != nil {
			a.acct.checked, a.acct.due = res.Session, time.Now().Add(sessionRecheck)
		}
	}
	a.mu.Unlock()
	a.update(func(s *State) {
		s.SessionURL = ""
		if res.Me != nil {
			me := *res.Me
			s.Session = &me
		}
	})
	a.wakeAccount()
	msg := "Logged in to your account"
	if res.Me != nil {
		msg += " as " + res.Me.Email
	}
	if saveErr != nil {
		a.log.Warn("keep the account session in the keyring", "err", saveErr)
		msg += "; with no keyring it lasts until weft tray quits"
	}
	a.notify(msg)
}

// endSession logs the account session out at the broker (as far as it can be reached)
// and forgets it here.
func (a *App) endSession(ctx context.Context) {
	if a.account == nil {
		return
	}
	a.mu.Lock()
	token, broker := a.acct.token, a.acct.broker
	a.mu.Unlock()
	if token == "" {
		return
	}
	if err := a.account.EndSession(ctx, token); err != nil && !errors.Is(err, ErrSessionEnded) {
		a.log.Warn("tell the broker the account session ended; forgetting it here anyway", "err", err)
	}
	a.forgetSession(broker, token)
}

// removeDevice removes a device from the account with the session.
func (a *App) removeDevice(ctx context.Context, it RemoveDevice) error {
	a.mu.Lock()
	token, broker := a.acct.token, a.acct.broker
	a.mu.Unlock()
	if token == "" {
		return errors.New("log in to your account first")
	}
	err := a.account.RemoveDevice(ctx, token, it.ID)
	if errors.Is(err, ErrSessionEnded) {
		a.forgetSession(broker, token)
	}
	// Ask again who the session is: a refusal may mean the role was taken away.
	a.mu.Lock()
	a.acct.due = time.Time{}
	a.mu.Unlock()
	a.wakeAccount()
	if err == nil {
		a.notify("Removed " + it.Name + " from the account")
	}
	return err
}
