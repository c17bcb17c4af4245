package broker

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/wire"
)

// startSession begins an account-session login and returns its answer and the page's path.
func (e *loginEnv) startSession(t *testing.T) (wire.LoginStartResponse, string) {
	t.Helper()
	resp, err := e.hc.Post(e.url+wire.PathSessionStart, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var start wire.LoginStartResponse
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&start) != nil {
		t.Fatalf("session start: %d", resp.StatusCode)
	}
	path, ok := strings.CutPrefix(start.LoginURL, e.url)
	if !ok || !strings.HasPrefix(path, wire.PathLoginPage) || len(start.Token) < 40 {
		t.Fatalf("session start answered %+v", start)
	}
	return start, path
}

func (e *loginEnv) waitSession(t *testing.T, token string) (int, wire.SessionWaitResponse, string) {
	t.Helper()
	status, body := e.postJSON(t, wire.PathSessionWait, wire.LoginWaitRequest{Token: token})
	var resp wire.SessionWaitResponse
	if status != http.StatusOK {
		return status, resp, errorLine(t, body)
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	return status, resp, ""
}

// bearer sends a request to the real broker with a session token.
func (tb *testBroker) bearer(t *testing.T, method, path, token string, body []byte) (int, []byte) {
	t.Helper()
	return tb.do(t, method, path, body, http.Header{"Authorization": {"Bearer " + token}})
}

func TestSessionLogin(t *testing.T) {
	e := newLoginEnv(t, time.Millisecond)
	start, path := e.startSession(t)

	// The poll tokens of the two kinds of login do not mix.
	if status, _, _ := e.wait(t, start.Token); status != http.StatusNotFound {
		t.Errorf("device wait with a session login's token: %d", status)
	}
	dev, _, _ := e.start(t, "laptop")
	if status, _, _ := e.waitSession(t, dev.Token); status != http.StatusNotFound {
		t.Errorf("session wait with a device login's token: %d", status)
	}
	if status, resp, _ := e.waitSession(t, start.Token); status != http.StatusOK || resp.Session != "" {
		t.Fatalf("wait before anyone signed in: %d %+v", status, resp)
	}

	// The page says what signing in does, on the same accessible form.
	br := e.browser(t)
	status, page, csrf := e.openPage(t, br, path)
	if status != http.StatusOK || csrf == "" || !strings.Contains(page, "log the weft tray app in to your account") ||
		strings.Contains(page, "add the device") || !strings.Contains(page, `<label for="password">`) {
		t.Fatalf("session login page: %d %s", status, page)
	}
	if status, page := e.submit(t, br, path, csrf, "acme", "ann@example.com", "wrong horse"); status != http.StatusUnauthorized ||
		!strings.Contains(page, "Wrong account, email or password") {
		t.Fatalf("wrong password: %d %s", status, page)
	}
	if status, page := e.submit(t, br, path, csrf, "acme", "Ann@Example.com", "correct horse"); status != http.StatusOK ||
		!strings.Contains(page, "logged in to the account acme as ann@example.com") {
		t.Fatalf("sign-in: %d %s", status, page)
	}
	if n := e.tb.deviceCount(t, "acme"); n != 0 {
		t.Fatalf("a session login registered %d devices", n)
	}

	status, got, _ := e.waitSession(t, start.Token)
	if status != http.StatusOK || len(got.Session) != 43 || got.Me == nil || got.Me.Email != "ann@example.com" ||
		got.Me.Account != "acme" || got.Me.Admin || time.Until(got.Me.Expires) < wire.SessionTTL-time.Hour {
		t.Fatalf("wait after sign-in: %d %+v %+v", status, got, got.Me)
	}
	// Handed out once; the link works once.
	if status, _, msg := e.waitSession(t, start.Token); status != http.StatusGone || !strings.Contains(msg, "already handed out") {
		t.Errorf("second wait: %d %s", status, msg)
	}
	if status, page, _ := e.openPage(t, br, path); status != http.StatusGone || !strings.Contains(page, "Log in to your account…") {
		t.Errorf("used link: %d %s", status, page)
	}

	// The token works on the real broker's account API, until logged out.
	var me wire.AccountMe
	status, body := e.tb.bearer(t, http.MethodGet, wire.PathAccountMe, got.Session, nil)
	if status != http.StatusOK || json.Unmarshal(body, &me) != nil || me != *got.Me {
		t.Fatalf("me: %d %s, want %+v", status, body, *got.Me)
	}
	if status, body := e.tb.bearer(t, http.MethodPost, wire.PathSessionLogout, got.Session, nil); status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", status, body)
	}
	status, body = e.tb.bearer(t, http.MethodGet, wire.PathAccountMe, got.Session, nil)
	if msg := errorLine(t, body); status != http.StatusUnauthorized || !strings.Contains(msg, "session logged out") {
		t.Fatalf("me after logout: %d %s", status, msg)
	}
	if status, _ := e.tb.bearer(t, http.MethodPost, wire.PathSessionLogout, got.Session, nil); status != http.StatusUnauthorized {
		t.Errorf("second logout: %d", status)
	}
}

func TestSessionLoginEnds(t *testing.T) {
	e := newLoginEnv(t, time.Millisecond)
	if status, body := e.postJSON(t, wire.PathSessionStart, map[string]string{"account": "acme"}); status != http.StatusBadRequest {
		t.Errorf("start with a body: %d %s", status, body)
	}
	if status, body := e.postJSON(t, wire.PathSessionWait, map[string]int{"token": 1}); status != http.StatusBadRequest {
		t.Errorf("malformed wait: %d %s", status, body)
	}
	if status, _, _ := e.waitSession(t, "no-such-token"); status != http.StatusNotFound {
		t.Errorf("wait with an unknown token: %d", status)
	}

	// Ten wrong passwords kill the link, as for devices.
	start, path := e.startSession(t)
	br := e.browser(t)
	_, _, csrf := e.openPage(t, br, path)
	for range maxLoginFailures {
		e.clock.Advance(passwordRefill + ipRefill)
		e.submit(t, br, path, csrf, "acme", "ann@example.com", "wrong")
	}
	if status, _, msg := e.waitSession(t, start.Token); status != http.StatusGone || !strings.Contains(msg, "too many wrong passwords") {
		t.Errorf("wait after too many wrong passwords: %d %s", status, msg)
	}
	if status, page, _ := e.openPage(t, br, path); status != http.StatusGone || !strings.Contains(page, "weft tray") {
		t.Errorf("dead link: %d %s", status, page)
	}

	// Expired before anyone signed in.
	start, path = e.startSession(t)
	e.clock.Advance(wire.LoginTTL + time.Second)
	if status, _, msg := e.waitSession(t, start.Token); status != http.StatusGone || !strings.Contains(msg, "expired") {
		t.Errorf("wait on an expired session login: %d %s", status, msg)
	}
	if status, _, _ := e.openPage(t, br, path); status != http.StatusGone {
		t.Errorf("expired link: %d", status)
	}
	if n := e.tb.deviceCount(t, "acme"); n != 0 {
		t.Fatalf("%d devices", n)
	}
}

func TestSessionStartIsRateLimited(t *testing.T) {
	e := newLoginEnv(t, time.Millisecond)
	for i := 0; ; i++ {
		resp, err := e.hc.Post(e.url+wire.PathSessionStart, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			if resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
			break
		}
		if resp.StatusCode != http.StatusOK || i > ipBurst {
			t.Fatalf("start %d: %d; want a per-address limit after %d", i, resp.StatusCode, ipBurst)
		}
	}
}
