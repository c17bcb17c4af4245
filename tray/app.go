package tray

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/ipc"
	"github.com/weftmesh/weft/wire"
)

const (
	// reconnectMin and reconnectMax bound the wait between attempts to reach weftd.
	reconnectMin = 500 * time.Millisecond
	reconnectMax = 5 * time.Second
	// noticeFor is how long an action's outcome stays in the menu.
	noticeFor = 15 * time.Second
	// actionTimeout bounds one call to weftd for a click.
	actionTimeout = 90 * time.Second
)

// API is what the tray needs of weftd; *ipc.Client implements it.
type API interface {
	Events(ctx context.Context, fn func(wire.Event) error) error
	Up(ctx context.Context, req wire.UpRequest) (wire.Status, error)
	Down(ctx context.Context) (wire.Status, error)
	Logout(ctx context.Context) (wire.Status, error)
}

// GatewayAPI lists and picks gateways, as weft gateway use does (LocalGateways, over
// weftd's local API); with a nil GatewayAPI the picker stays disabled.
type GatewayAPI interface {
	Gateways(ctx context.Context) (Gateways, error)
	UseGateway(ctx context.Context, id string) error
}

// View shows the menu and icon; the systray adapter implements it.
type View interface {
	Show(items []Item, icon, tooltip string)
}

// Desktop is what the tray asks of the desktop session.
type Desktop interface {
	OpenURL(url string) error
	Copy(text string) error
}

// App keeps the tray's State current from weftd's event stream and carries out clicks.
type App struct {
	api      API
	gw       GatewayAPI // nil: not offered
	account  AccountAPI // nil: not offered
	desk     Desktop
	sessions SessionStore // nil: no keyring
	view     View
	log      *slog.Logger
	loginCA  string // PEM for the --broker login, if given
	quit     func()

	mu    sync.Mutex // guards state, noticeGen and acct
	state State
	// noticeGen numbers notices, so a timer clears only the one it was set for.
	noticeGen int
	// acct is the account session behind state.Session (account.go).
	acct accountState

	clicks   chan Intent
	acctWake chan struct{} // asks watchAccount to look at the session now
	// renderMu serialises renders, so that concurrent updates never leave the view
	// showing an older state than the last one.
	renderMu sync.Mutex
}

// AppConfig is what an App is built from. API, View and Desktop are required.
type AppConfig struct {
	API         API
	Gateways    GatewayAPI
	Account     AccountAPI
	Desktop     Desktop
	Sessions    SessionStore
	View        View
	Logger      *slog.Logger
	LoginBroker string // broker for "Log in…" when weftd knows none
	LoginCA     string // PEM of the CA of LoginBroker
	Quit        func() // ends the tray; called for the Quit item
}

// NewApp returns an app that shows nothing until Run.
func NewApp(cfg AppConfig) *App {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &App{api: cfg.API, gw: cfg.Gateways, account: cfg.Account, desk: cfg.Desktop, sessions: cfg.Sessions,
		view: cfg.View, log: log, loginCA: cfg.LoginCA, quit: cfg.Quit,
		state:  State{LoginBroker: cfg.LoginBroker, Accounts: cfg.Account != nil},
		clicks: make(chan Intent, 16), acctWake: make(chan struct{}, 1)}
}

// Click queues a click's intent; actions run one at a time, in order.
func (a *App) Click(it Intent) {
	if it == nil {
		return
	}
	select {
	case a.clicks <- it:
	default:
		a.log.Warn("too many clicks queued; dropping one", "intent", fmt.Sprintf("%T", it))
	}
}

// Run follows weftd and carries out clicks until ctx ends.
func (a *App) Run(ctx context.Context) {
	a.render()
	var wg sync.WaitGroup
	wg.Go(func() { a.follow(ctx) })
	if a.account != nil {
		wg.Go(func() { a.watchAccount(ctx) })
	}
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case it := <-a.clicks:
				a.act(ctx, it)
			}
		}
	})
	wg.Wait()
}

// follow keeps the event stream open, reconnecting with backoff while weftd is away.
func (a *App) follow(ctx context.Context) {
	wait := reconnectMin
	for {
		err := a.api.Events(ctx, func(ev wire.Event) error {
			if ev.Status == nil {
				return nil
			}
			wait = reconnectMin
			a.update(func(s *State) {
				s.Service, s.Denied, s.Status = ServiceUp, false, *ev.Status
			})
			a.refreshExtras(ctx)
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		var apiErr *ipc.APIError
		denied := errors.Is(err, ipc.ErrDenied) || errors.As(err, &apiErr) && apiErr.Status == http.StatusForbidden
		a.log.Info("weftd unreachable; retrying", "err", err, "in", wait)
		a.update(func(s *State) { s.Service, s.Denied, s.Busy = ServiceDown, denied, "" })
		// Jitter, so trays of many users do not return in step after a restart.
		d := wait/2 + time.Duration(rand.Int64N(int64(wait/2)+1))
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		wait = min(2*wait, reconnectMax)
	}
}

// refreshExtras loads what the event stream does not carry: gateways, and (through
// watchAccount) the account session.
func (a *App) refreshExtras(ctx context.Context) {
	if a.gw != nil {
		g, err := a.gw.Gateways(ctx)
		if err != nil {
			a.log.Debug("list gateways", "err", err)
		} else {
			a.update(func(s *State) { s.Gateways = &g })
		}
	}
	a.wakeAccount()
}

// update changes the state and shows the result.
func (a *App) update(change func(*State)) {
	a.mu.Lock()
	change(&a.state)
	a.mu.Unlock()
	a.render()
}

// Snapshot returns the current state.
func (a *App) Snapshot() State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

func (a *App) render() {
	a.renderMu.Lock()
	defer a.renderMu.Unlock()
	s := a.Snapshot()
	a.view.Show(Menu(s), Icon(s), Tooltip(s))
}

// notify shows an action's outcome for a while.
func (a *App) notify(text string) {
	a.mu.Lock()
	a.noticeGen++
	gen := a.noticeGen
	a.state.Notice = text
	a.mu.Unlock()
	a.render()
	time.AfterFunc(noticeFor, func() {
		a.mu.Lock()
		current := a.noticeGen == gen
		if current {
			a.state.Notice = ""
		}
		a.mu.Unlock()
		if current {
			a.render()
		}
	})
}

// act carries out one click.
func (a *App) act(ctx context.Context, it Intent) {
	ctx, cancel := context.WithTimeout(ctx, actionTimeout)
	defer cancel()
	busy := func(what string) func() {
		a.update(func(s *State) { s.Busy = what })
		return func() { a.update(func(s *State) { s.Busy = "" }) }
	}
	var err error
	var failed string
	switch it := it.(type) {
	case Connect:
		done := busy("connecting…")
		_, err = a.api.Up(ctx, wire.UpRequest{})
		done()
		failed = "Couldn't connect"
	case Disconnect:
		done := busy("disconnecting…")
		_, err = a.api.Down(ctx)
		done()
		failed = "Couldn't disconnect"
	case LogIn:
		err = a.logIn(ctx, busy)
		failed = "Couldn't start the login"
	case OpenURL:
		a.openURL(it.URL)
	case LogOut:
		s := a.Snapshot()
		broker := s.Status.Broker
		done := busy("logging out…")
		if isMember(s) {
			// The account session goes with the device (not with a cancelled login); end it
			// while weftd still names the broker.
			a.endSession(ctx)
		}
		_, err = a.api.Logout(ctx)
		done()
		failed = "Couldn't log out"
		if err == nil && a.sessions != nil && broker != "" {
			if derr := a.sessions.Delete(broker); derr != nil {
				a.log.Warn("forget the broker session", "err", derr)
			}
		}
	case Copy:
		if err = a.desk.Copy(it.Text); err == nil {
			a.notify("Copied " + it.Text)
		}
		failed = "Couldn't copy"
	case UseGateway:
		if a.gw == nil {
			return
		}
		done := busy("switching gateway…")
		err = a.gw.UseGateway(ctx, it.ID)
		done()
		failed = "Couldn't switch the gateway"
		if err == nil {
			a.refreshExtras(ctx)
		}
	case RemoveDevice:
		if a.account == nil {
			return
		}
		done := busy("removing " + it.Name + "…")
		err = a.removeDevice(ctx, it)
		done()
		failed = "Couldn't remove " + it.Name
	case AccountLogIn:
		if a.account == nil {
			return
		}
		err = a.startSessionLogin(ctx, busy)
		failed = "Couldn't start the account login"
	case AccountLogOut:
		if a.account == nil {
			return
		}
		done := busy("logging out of your account…")
		a.endSession(ctx)
		done()
		a.notify("Logged out of your account")
	case Quit:
		if a.quit != nil {
			a.quit()
		}
	}
	if err != nil {
		a.log.Warn(failed, "err", err)
		a.notify(failed + ": " + oneLine(err))
	}
}

// logIn starts a browser login at weftd's broker (or --broker) and opens its page.
func (a *App) logIn(ctx context.Context, busy func(string) func()) error {
	s := a.Snapshot()
	req := wire.UpRequest{}
	if s.Status.Broker == "" {
		req.Broker, req.CAPEM = s.LoginBroker, a.loginCA
	}
	done := busy("starting the login…")
	st, err := a.api.Up(ctx, req)
	done()
	if err != nil {
		return err
	}
	if st.LoginURL != "" {
		a.openURL(st.LoginURL)
	}
	return nil
}

// openURL opens a login page; without a browser it puts the address on the clipboard.
func (a *App) openURL(url string) {
	if !strings.HasPrefix(url, "https://") {
		a.notify("Not opening " + url + ": not an https address")
		return
	}
	err := a.desk.OpenURL(url)
	if err == nil {
		return
	}
	a.log.Warn("open the browser", "err", err)
	if cerr := a.desk.Copy(url); cerr == nil {
		a.notify("No browser could be opened; the login address is on the clipboard")
		return
	}
	a.notify("Open this address in a browser: " + url)
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
