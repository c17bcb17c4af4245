package tray

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/zalando/go-keyring"

	"github.com/weftmesh/weft/wire"
)

// fakeAccount is the broker's account API: sessions by token, and a login whose waits
// answer what the test sends on waits.
type fakeAccount struct {
	waits chan waitAnswer

	mu    sync.Mutex
	me    map[string]wire.AccountMe // live sessions by token
	calls []string
}

type waitAnswer struct {
	res wire.SessionWaitResponse
	err error
}

func newFakeAccount() *fakeAccount {
	return &fakeAccount{waits: make(chan waitAnswer), me: map[string]wire.AccountMe{}}
}

func (f *fakeAccount) record(c string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
}

func (f *fakeAccount) Calls() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, ",")
}

func (f *fakeAccount) session(token string) (wire.AccountMe, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	me, ok := f.me[token]
	if !ok {
		return me, &BrokerError{Status: 401, Message: "session logged out; log in again", kind: ErrSessionEnded}
	}
	return me, nil
}

func (f *fakeAccount) StartSession(context.Context) (wire.LoginStartResponse, error) {
	f.record("start")
	return wire.LoginStartResponse{LoginURL: "https://broker.test/login/s1", Token: "poll-1"}, nil
}

func (f *fakeAccount) WaitSession(ctx context.Context, poll string) (wire.SessionWaitResponse, error) {
	f.record("wait " + poll)
	select {
	case <-ctx.Done():
		return wire.SessionWaitResponse{}, ctx.Err()
	case a := <-f.waits:
		if a.res.Session != "" {
			f.mu.Lock()
			f.me[a.res.Session] = *a.res.Me
			f.mu.Unlock()
		}
		return a.res, a.err
	}
}

func (f *fakeAccount) Me(_ context.Context, token string) (wire.AccountMe, error) {
	f.record("me " + token)
	return f.session(token)
}

func (f *fakeAccount) RemoveDevice(_ context.Context, token, device string) error {
	f.record("remove " + token + " " + device)
	me, err := f.session(token)
	if err == nil && !me.Admin {
		err = &BrokerError{Status: 403, Message: "admin only: " + me.Email + " is not an administrator of " + me.Account}
	}
	return err
}

func (f *fakeAccount) EndSession(_ context.Context, token string) error {
	f.record("end " + token)
	if _, err := f.session(token); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.me, token)
	return nil
}

// failingKeyring is a SessionStore where no keyring answers.
type failingKeyring struct{}

func (failingKeyring) Load(string) (string, bool, error) {
	return "", false, errors.New("no secret service")
}
func (failingKeyring) Save(string, string) error { return errors.New("no secret service") }
func (failingKeyring) Delete(string) error       { return errors.New("no secret service") }

const testBroker = "https://broker.test"

// startAccountApp runs an app with acct and sessions, following a running weftd.
func startAccountApp(t *testing.T, acct *fakeAccount, sessions SessionStore) (*harness, chan wire.Event) {
	t.Helper()
	h := &harness{api: &fakeAPI{streams: make(chan chan wire.Event)}, view: &fakeView{}, desk: &fakeDesktop{}, quits: make(chan struct{}, 1)}
	h.app = NewApp(AppConfig{API: h.api, Account: acct, View: h.view, Desktop: h.desk, Sessions: sessions,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		h.app.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	stream := make(chan wire.Event)
	h.api.streams <- stream
	st := running().Status
	stream <- wire.Event{Type: wire.EventStatus, Status: &st}
	eventually(t, "connected", func() bool { return h.view.label("status") == "weft: connected to acme" })
	return h, stream
}

func (h *harness) notice() string { return h.view.label("notice") }

// tooltip is the whole text of the shown item id (labels are clipped).
func (v *fakeView) tooltip(id string) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var walk func([]Item) string
	walk = func(list []Item) string {
		for _, it := range list {
			if it.ID == id && !it.Hidden {
				return it.Tooltip
			}
			if tip := walk(it.Children); tip != "" {
				return tip
			}
		}
		return ""
	}
	return walk(v.items)
}

// mockKeyring is go-keyring's in-memory keyring under a service name of the test's own.
func mockKeyring(t *testing.T) Keyring {
	keyring.MockInit()
	return Keyring{Service: "weft-" + t.Name()}
}

func TestAppAccountSessionFromKeyring(t *testing.T) {
	kr := mockKeyring(t)
	acct := newFakeAccount()
	acct.me["tok-ann"] = wire.AccountMe{Email: "ann@example.com", Account: "acme", Admin: true}
	if err := kr.Save(testBroker, "tok-ann"); err != nil {
		t.Fatal(err)
	}
	h, _ := startAccountApp(t, acct, kr)
	eventually(t, "session loaded and shown", func() bool {
		return h.view.label("account") == "Log out of your account (ann@example.com)"
	})
	eventually(t, "admin items", func() bool { return h.view.label("device/p1/remove") == "Remove from account…" })
	if !strings.HasPrefix(acct.Calls(), "me tok-ann") {
		t.Fatalf("calls %s", acct.Calls())
	}

	h.app.Click(RemoveDevice{ID: "p1", Name: "desk"})
	eventually(t, "removed", func() bool { return h.notice() == "Removed desk from the account" })
	if !strings.Contains(acct.Calls(), "remove tok-ann p1") {
		t.Fatalf("calls %s", acct.Calls())
	}

	h.app.Click(AccountLogOut{})
	eventually(t, "logged out", func() bool { return h.view.label("account") == "Log in to your account…" })
	if h.view.label("device/p1/remove") != "" {
		t.Fatal("admin items after logging out")
	}
	if !strings.Contains(acct.Calls(), "end tok-ann") {
		t.Fatalf("the broker was not told: %s", acct.Calls())
	}
	if _, ok, _ := kr.Load(testBroker); ok {
		t.Fatal("the session is still in the keyring")
	}
}

func TestAppAccountLogin(t *testing.T) {
	kr := mockKeyring(t)
	acct := newFakeAccount()
	h, _ := startAccountApp(t, acct, kr)
	eventually(t, "log in item", func() bool { return h.view.label("account") == "Log in to your account…" })

	h.app.Click(AccountLogIn{})
	eventually(t, "login page opened", func() bool {
		h.desk.mu.Lock()
		defer h.desk.mu.Unlock()
		return len(h.desk.opened) == 1 && h.desk.opened[0] == "https://broker.test/login/s1"
	})
	eventually(t, "login page item", func() bool { return h.view.label("account") == "Open the account login page…" })
	// The person signs in as a member: logged in, no admin items, the token in the keyring.
	me := wire.AccountMe{Email: "bob@example.com", Account: "acme"}
	acct.waits <- waitAnswer{res: wire.SessionWaitResponse{Session: "tok-bob", Me: &me}}
	eventually(t, "logged in", func() bool { return h.view.label("account") == "Log out of your account (bob@example.com)" })
	eventually(t, "notice", func() bool { return h.notice() == "Logged in to your account as bob@example.com" })
	if tok, ok, _ := kr.Load(testBroker); !ok || tok != "tok-bob" {
		t.Fatalf("keyring has %q %v", tok, ok)
	}
	if h.view.label("device/p1/remove") != "" {
		t.Fatal("admin items for a member")
	}
	// Removing anyway (a stale menu) is refused by the broker and says so.
	h.app.Click(RemoveDevice{ID: "p1", Name: "desk"})
	eventually(t, "refusal shown", func() bool { return strings.Contains(h.notice(), "Couldn't remove desk: admin only") })

	// The session ends at the broker: the next check forgets it.
	acct.mu.Lock()
	delete(acct.me, "tok-bob")
	acct.mu.Unlock()
	h.app.mu.Lock()
	h.app.acct.due = h.app.acct.due.AddDate(-1, 0, 0)
	h.app.mu.Unlock()
	h.app.wakeAccount()
	eventually(t, "ended session forgotten", func() bool { return h.view.label("account") == "Log in to your account…" })
	if _, ok, _ := kr.Load(testBroker); ok {
		t.Fatal("an ended session stayed in the keyring")
	}
}

func TestAppAccountLoginFails(t *testing.T) {
	acct := newFakeAccount()
	h, _ := startAccountApp(t, acct, mockKeyring(t))
	h.app.Click(AccountLogIn{})
	eventually(t, "waiting", func() bool { return h.view.label("account") == "Open the account login page…" })
	acct.waits <- waitAnswer{err: &BrokerError{Status: 410, Message: "too many wrong passwords", kind: ErrLoginEnded}}
	eventually(t, "failure shown", func() bool { return h.notice() == "Account login failed: too many wrong passwords" })
	if l := h.view.label("account"); l != "Log in to your account…" {
		t.Fatalf("account item %q after a failed login", l)
	}
}

func TestAppAccountWithoutKeyring(t *testing.T) {
	acct := newFakeAccount()
	h, _ := startAccountApp(t, acct, failingKeyring{})
	h.app.Click(AccountLogIn{})
	eventually(t, "waiting", func() bool { return h.view.label("account") == "Open the account login page…" })
	me := wire.AccountMe{Email: "ann@example.com", Account: "acme", Admin: true}
	acct.waits <- waitAnswer{res: wire.SessionWaitResponse{Session: "tok-ann", Me: &me}}
	eventually(t, "logged in for this run", func() bool {
		return strings.HasSuffix(h.view.tooltip("notice"), "with no keyring it lasts until weft tray quits")
	})
	eventually(t, "admin items", func() bool { return h.view.label("device/p1/remove") == "Remove from account…" })

	// Logging the device out ends the account session too, before weftd forgets the broker.
	h.app.Click(LogOut{})
	eventually(t, "device logged out", func() bool { return h.api.Calls() == "logout" })
	if c := acct.Calls(); !strings.Contains(c, "end tok-ann") {
		t.Fatalf("account calls %s", c)
	}
}
