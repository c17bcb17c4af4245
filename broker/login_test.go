package broker

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/wire"
)

// loginEnv is a login flow on its own TLS server (so tests control its clock), backed by a
// real broker's store and hub, with a browser-like client that keeps cookies.
type loginEnv struct {
	tb    *testBroker
	flow  *loginFlow
	clock *fakeClock
	url   string
	hc    *http.Client // the device's client
}

func newLoginEnv(t *testing.T, waitTimeout time.Duration) *loginEnv {
	t.Helper()
	tb := startBroker(t, nil)
	tb.setupAccount(t, "acme")
	if err := tb.store.AddUser(t.Context(), "acme", "ann@example.com", "correct horse"); err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Now()}
	flow := newLoginFlow(tb.Broker, clock.Now, waitTimeout)
	tb.limiter = newLimiter(passwordBurst, passwordRefill, clock.Now)
	mux := http.NewServeMux()
	flow.routes(mux)
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	return &loginEnv{tb: tb, flow: flow, clock: clock, url: srv.URL, hc: srv.Client()}
}

// browser is a cookie-keeping client, like one browser profile.
func (e *loginEnv) browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (e *loginEnv) postJSON(t *testing.T, path string, in any) (int, []byte) {
	t.Helper()
	resp, err := e.hc.Post(e.url+path, "application/json", strings.NewReader(string(mustJSON(t, in))))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// start begins a login for a new key and returns the response with the URL's path.
func (e *loginEnv) start(t *testing.T, name string) (wire.LoginStartResponse, string, wire.Key) {
	t.Helper()
	k, _ := wire.NewPrivateKey()
	status, body := e.postJSON(t, wire.PathLoginStart, wire.LoginStartRequest{Version: wire.ProtocolVersion,
		PublicKey: k.Public(), Name: name, ListenPort: 51820,
		Endpoints: []netip.AddrPort{netip.MustParseAddrPort("192.168.1.10:51820")}})
	if status != http.StatusOK {
		t.Fatalf("login start: %d %s", status, body)
	}
	var resp wire.LoginStartResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(resp.LoginURL)
	if err != nil || u.Scheme != "https" || !strings.HasPrefix(u.Path, wire.PathLoginPage) || len(resp.Token) < 40 {
		t.Fatalf("login start answered %+v", resp)
	}
	return resp, u.Path, k.Public()
}

func (e *loginEnv) wait(t *testing.T, token string) (int, wire.LoginWaitResponse, string) {
	t.Helper()
	status, body := e.postJSON(t, wire.PathLoginWait, wire.LoginWaitRequest{Token: token})
	var resp wire.LoginWaitResponse
	if status == http.StatusOK {
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatal(err)
		}
		return status, resp, ""
	}
	return status, resp, errorLine(t, body)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// openPage GETs the login page and returns its status, body and CSRF token.
func (e *loginEnv) openPage(t *testing.T, br *http.Client, path string) (int, string, string) {
	t.Helper()
	resp, err := br.Get(e.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("page Content-Type %q", ct)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("page CSP %q", csp)
		}
	}
	m := csrfRE.FindSubmatch(b)
	csrf := ""
	if m != nil {
		csrf = string(m[1])
	}
	return resp.StatusCode, string(b), csrf
}

func (e *loginEnv) submit(t *testing.T, br *http.Client, path, csrf, account, email, password string) (int, string) {
	t.Helper()
	form := url.Values{"csrf": {csrf}, "account": {account}, "email": {email}, "password": {password}}
	resp, err := br.PostForm(e.url+path, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestBrowserLogin(t *testing.T) {
	// Waits are held longer than the test waits: a wait that returns has been woken.
	e := newLoginEnv(t, time.Minute)
	start, path, pub := e.start(t, "laptop")
	waited := make(chan wire.LoginWaitResponse, 1)
	go func() {
		var resp wire.LoginWaitResponse
		r, err := e.hc.Post(e.url+wire.PathLoginWait, "application/json",
			strings.NewReader(`{"token":"`+start.Token+`"}`))
		if err == nil {
			json.NewDecoder(r.Body).Decode(&resp)
			r.Body.Close()
		}
		waited <- resp
	}()

	br := e.browser(t)
	status, body, csrf := e.openPage(t, br, path)
	if status != http.StatusOK || csrf == "" || !strings.Contains(body, `<label for="password">`) || !strings.Contains(body, "laptop") {
		t.Fatalf("login page: %d %s", status, body)
	}

	// A wrong password shows the error on the page and registers nothing.
	status, body = e.submit(t, br, path, csrf, "acme", "ann@example.com", "wrong horse")
	if status != http.StatusUnauthorized || !strings.Contains(body, `role="alert"`) || !strings.Contains(body, "Wrong account, email or password") {
		t.Fatalf("wrong password: %d %s", status, body)
	}
	if strings.Contains(body, "wrong horse") {
		t.Fatal("the page echoes the password")
	}
	if n := e.tb.deviceCount(t, "acme"); n != 0 {
		t.Fatalf("%d devices after a wrong password", n)
	}

	// The right one registers the device, and the device's pending wait gets its record.
	status, body = e.submit(t, br, path, csrf, " acme ", "Ann@Example.com", "correct horse")
	if status != http.StatusOK || !strings.Contains(body, "You are signed in") {
		t.Fatalf("sign-in: %d %s", status, body)
	}
	var dev *wire.Device
	select {
	case resp := <-waited:
		dev = resp.Device
	case <-time.After(wait):
		t.Fatal("the pending wait did not return")
	}
	if dev == nil {
		t.Fatal("the pending wait returned without the device")
	}
	if dev.PublicKey != pub || dev.Name != "laptop" || dev.Account != "acme" || !strings.Contains(body, dev.Address.String()) {
		t.Fatalf("registered %+v; page %s", dev, body)
	}
	wantEps := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:51820"), netip.MustParseAddrPort("192.168.1.10:51820")}
	if !slices.Equal(dev.Endpoints, wantEps) {
		t.Fatalf("endpoints %v, want observed then reported %v", dev.Endpoints, wantEps)
	}
	stored, err := e.tb.store.DeviceByKey(context.Background(), pub)
	if err != nil || stored.Address != dev.Address {
		t.Fatalf("store has %+v, %v", stored, err)
	}

	// The URL is single-use: the page and a replayed post are refused.
	if status, body, _ := e.openPage(t, br, path); status != http.StatusGone || !strings.Contains(body, "already used") {
		t.Fatalf("reopened page: %d %s", status, body)
	}
	if status, _ := e.submit(t, br, path, csrf, "acme", "ann@example.com", "correct horse"); status != http.StatusGone {
		t.Fatalf("replayed post: %d", status)
	}
	if n := e.tb.deviceCount(t, "acme"); n != 1 {
		t.Fatalf("%d devices after one sign-in and a replay", n)
	}

	// A reinstall (new key, same name, old device offline) signs in to the same address.
	start2, path2, pub2 := e.start(t, "laptop")
	_, _, csrf2 := e.openPage(t, br, path2)
	if status, body := e.submit(t, br, path2, csrf2, "acme", "ann@example.com", "correct horse"); status != http.StatusOK {
		t.Fatalf("second sign-in: %d %s", status, body)
	}
	_, resp2, _ := e.wait(t, start2.Token)
	if resp2.Device == nil || resp2.Device.PublicKey != pub2 || resp2.Device.Address != dev.Address {
		t.Fatalf("reinstall got %+v, want address %s", resp2.Device, dev.Address)
	}
}

func TestBrowserLoginCSRF(t *testing.T) {
	e := newLoginEnv(t, time.Millisecond)
	_, path, _ := e.start(t, "laptop")
	br := e.browser(t)
	_, _, csrf := e.openPage(t, br, path)

	// Another browser (no session cookie, or its own) cannot use the first one's token.
	other := e.browser(t)
	if status, body := e.submit(t, other, path, csrf, "acme", "ann@example.com", "correct horse"); status != http.StatusForbidden || !strings.Contains(body, "Session expired") {
		t.Fatalf("post without the session cookie: %d %s", status, body)
	}
	e.openPage(t, other, path)
	if status, _ := e.submit(t, other, path, csrf, "acme", "ann@example.com", "correct horse"); status != http.StatusForbidden {
		t.Fatalf("post with another session's token: %d", status)
	}
	if status, _ := e.submit(t, br, path, "forged", "acme", "ann@example.com", "correct horse"); status != http.StatusForbidden {
		t.Fatalf("post with a forged token: %d", status)
	}
	if n := e.tb.deviceCount(t, "acme"); n != 0 {
		t.Fatalf("%d devices registered through forged posts", n)
	}
	// Missing fields say which one.
	if status, body := e.submit(t, br, path, csrf, "acme", "", "x"); status != http.StatusBadRequest || !strings.Contains(body, "Enter your email address.") {
		t.Fatalf("missing email: %d %s", status, body)
	}
	// An oversized form is refused.
	form := url.Values{"csrf": {csrf}, "account": {strings.Repeat("a", maxFormBody)}}
	resp, err := br.PostForm(e.url+path, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("oversized form: %d", resp.StatusCode)
	}
}

func TestBrowserLoginExpiresAndRateLimits(t *testing.T) {
	e := newLoginEnv(t, time.Millisecond)
	start, path, _ := e.start(t, "laptop")
	br := e.browser(t)
	_, _, csrf := e.openPage(t, br, path)

	// Per account and email: a burst of wrong passwords, then even the right one waits.
	for i := range passwordBurst {
		if status, _ := e.submit(t, br, path, csrf, "acme", "ann@example.com", "wrong"); status != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d", i, status)
		}
	}
	if status, body := e.submit(t, br, path, csrf, "acme", "ann@example.com", "correct horse"); status != http.StatusTooManyRequests || !strings.Contains(body, "Too many sign-in attempts") {
		t.Fatalf("after a burst of wrong passwords: %d %s", status, body)
	}
	// Per source address, whatever the account.
	for i := 0; ; i++ {
		status, _ := e.submit(t, br, path, csrf, "acme", "other"+string(rune('a'+i))+"@example.com", "wrong")
		if status == http.StatusTooManyRequests {
			break
		}
		if i > ipBurst {
			t.Fatal("no per-address limit")
		}
	}
	if n := e.tb.deviceCount(t, "acme"); n != 0 {
		t.Fatalf("%d devices", n)
	}

	// After its lifetime the URL is dead, and the waiting device hears so.
	e.clock.Advance(wire.LoginTTL + time.Second)
	if status, body, _ := e.openPage(t, br, path); status != http.StatusGone || !strings.Contains(body, "expired") {
		t.Fatalf("expired page: %d %s", status, body)
	}
	if status, _, msg := e.wait(t, start.Token); status != http.StatusGone || !strings.Contains(msg, "expired") {
		t.Fatalf("wait on an expired login: %d %s", status, msg)
	}
	// Long after, it is forgotten.
	e.clock.Advance(loginGrace + time.Second)
	if status, _, _ := e.wait(t, start.Token); status != http.StatusNotFound {
		t.Fatalf("wait on a forgotten login: %d", status)
	}
	if status, _, _ := e.openPage(t, br, path); status != http.StatusNotFound {
		t.Fatalf("forgotten page: %d", status)
	}
}

func TestBrowserLoginDiesAfterTooManyFailures(t *testing.T) {
	e := newLoginEnv(t, time.Millisecond)
	start, path, _ := e.start(t, "laptop")
	br := e.browser(t)
	_, _, csrf := e.openPage(t, br, path)
	for i := range maxLoginFailures {
		// Refill the rate limits: this is about the link's own count.
		e.clock.Advance(passwordRefill + ipRefill)
		status, _ := e.submit(t, br, path, csrf, "acme", "ann@example.com", "wrong")
		if i < maxLoginFailures-1 && status != http.StatusUnauthorized || i == maxLoginFailures-1 && status != http.StatusGone {
			t.Fatalf("wrong password %d: %d", i+1, status)
		}
	}
	if status, _, msg := e.wait(t, start.Token); status != http.StatusGone || !strings.Contains(msg, "too many wrong passwords") {
		t.Fatalf("wait: %d %s", status, msg)
	}
}

func TestBrowserLoginStart(t *testing.T) {
	e := newLoginEnv(t, time.Millisecond)
	k, _ := wire.NewPrivateKey()
	bad := []wire.LoginStartRequest{
		{PublicKey: k.Public(), Name: "laptop"},
		{Version: wire.ProtocolVersion + 1, PublicKey: k.Public(), Name: "laptop"},
		{Version: wire.ProtocolVersion, Name: "laptop"},
		{Version: wire.ProtocolVersion, PublicKey: k.Public(), Name: "Not_A_Label"},
		{Version: wire.ProtocolVersion, PublicKey: k.Public(), Name: "laptop", ListenPort: 70000},
	}
	for _, req := range bad {
		if status, body := e.postJSON(t, wire.PathLoginStart, req); status != http.StatusBadRequest {
			t.Errorf("start %+v: %d %s", req, status, body)
		} else {
			errorLine(t, body)
		}
	}
	if status, _, _ := e.wait(t, "no-such-token"); status != http.StatusNotFound {
		t.Errorf("wait with an unknown token: %d", status)
	}
	// A device that starts again replaces its older login.
	req := wire.LoginStartRequest{Version: wire.ProtocolVersion, PublicKey: k.Public(), Name: "laptop"}
	_, b1 := e.postJSON(t, wire.PathLoginStart, req)
	_, b2 := e.postJSON(t, wire.PathLoginStart, req)
	var r1, r2 wire.LoginStartResponse
	json.Unmarshal(b1, &r1)
	json.Unmarshal(b2, &r2)
	if status, _, msg := e.wait(t, r1.Token); status != http.StatusGone || !strings.Contains(msg, "replaced") {
		t.Errorf("wait on a replaced login: %d %s", status, msg)
	}
	if status, resp, _ := e.wait(t, r2.Token); status != http.StatusOK || resp.Device != nil {
		t.Errorf("wait on the newer login: %d", status)
	}
}

func TestBrowserLoginOnTheRealHandler(t *testing.T) {
	tb := startBroker(t, nil)
	k, _ := wire.NewPrivateKey()
	status, body := tb.do(t, http.MethodPost, wire.PathLoginStart, mustJSON(t, wire.LoginStartRequest{
		Version: wire.ProtocolVersion, PublicKey: k.Public(), Name: "laptop"}), nil)
	var resp wire.LoginStartResponse
	if status != http.StatusOK || json.Unmarshal(body, &resp) != nil || !strings.HasPrefix(resp.LoginURL, tb.url+wire.PathLoginPage) {
		t.Fatalf("start on the broker: %d %s", status, body)
	}
	if status, _ := tb.do(t, http.MethodDelete, strings.TrimPrefix(resp.LoginURL, tb.url), nil, nil); status != http.StatusMethodNotAllowed {
		t.Fatalf("DELETE on the page: %d", status)
	}
}
