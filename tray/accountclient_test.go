package tray

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/alexedwards/argon2id"

	"github.com/weftmesh/weft/broker"
	"github.com/weftmesh/weft/broker/store"
	"github.com/weftmesh/weft/wire"
)

// realBroker runs a weft-broker in-process over TLS with account acme: ann (an
// administrator), bob (not one) and the device desk. It returns the broker's URL and CA.
func realBroker(t *testing.T) wire.LocalBroker {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	b, err := broker.New(ctx, broker.Config{DataDir: dir, Listen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		StoreOptions: store.Options{PasswordParams: &argon2id.Params{
			Memory: 1024, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		b.Wait()
		b.Close()
	})
	ca, err := os.ReadFile(filepath.Join(dir, broker.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	ac, err := broker.NewAdminClient(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ac.CreateAccount(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	for _, u := range []broker.AdminUserRequest{
		{Account: "acme", Email: "ann@example.com", Password: "correct horse", Admin: true},
		{Account: "acme", Email: "bob@example.com", Password: "battery staple"},
	} {
		if err := ac.AddUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	key, err := ac.CreateAuthKey(ctx, broker.AdminAuthKeyRequest{Account: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	lb := wire.LocalBroker{URL: "https://" + b.Addr().String(), CAPEM: string(ca)}
	priv, _ := wire.NewPrivateKey()
	req, _ := json.Marshal(wire.RegisterRequest{Version: wire.ProtocolVersion, PublicKey: priv.Public(), Name: "desk", AuthKey: key})
	resp, err := browser(t, lb).Post(lb.URL+wire.PathRegister, "application/json", strings.NewReader(string(req)))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("register desk: %v %v", resp, err)
	}
	resp.Body.Close()
	return lb
}

// browser is a cookie-keeping client trusting the broker's CA, as a person's browser would.
func browser(t *testing.T, lb wire.LocalBroker) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(lb.CAPEM))
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn fills the login page at loginURL.
func signIn(t *testing.T, lb wire.LocalBroker, loginURL, email, password string) string {
	t.Helper()
	hc := browser(t, lb)
	resp, err := hc.Get(loginURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindSubmatch(page)
	if m == nil {
		t.Fatalf("login page: %d %s", resp.StatusCode, page)
	}
	resp, err = hc.PostForm(loginURL, url.Values{"csrf": {string(m[1])}, "account": {"acme"}, "email": {email}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ = io.ReadAll(resp.Body)
	return string(page)
}

// sessionLogin gets a session through the browser login, as the tray does.
func sessionLogin(t *testing.T, c *AccountClient, lb wire.LocalBroker, email, password string) (string, wire.LoginStartResponse) {
	t.Helper()
	ctx := context.Background()
	start, err := c.StartSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(start.LoginURL, lb.URL+wire.PathLoginPage) {
		t.Fatalf("login URL %q is not on the broker", start.LoginURL)
	}
	if page := signIn(t, lb, start.LoginURL, email, password); !strings.Contains(page, "You are signed in") {
		t.Fatalf("sign-in page:\n%s", page)
	}
	res, err := c.WaitSession(ctx, start.Token)
	if err != nil || res.Session == "" || res.Me == nil || res.Me.Email != email {
		t.Fatalf("wait: %+v, %v", res, err)
	}
	return res.Session, start
}

func TestAccountClientAgainstTheBroker(t *testing.T) {
	lb := realBroker(t)
	ctx := context.Background()
	c := &AccountClient{Broker: func(context.Context) (wire.LocalBroker, error) { return lb, nil }}

	bob, start := sessionLogin(t, c, lb, "bob@example.com", "battery staple")
	// The session is handed out once.
	if _, err := c.WaitSession(ctx, start.Token); !errors.Is(err, ErrLoginEnded) {
		t.Fatalf("second wait: %v, want ErrLoginEnded", err)
	}
	me, err := c.Me(ctx, bob)
	if err != nil || me.Email != "bob@example.com" || me.Account != "acme" || me.Admin {
		t.Fatalf("bob's me: %+v, %v", me, err)
	}
	devs, err := c.Devices(ctx, bob)
	if err != nil || len(devs) != 1 || devs[0].Name != "desk" {
		t.Fatalf("devices: %+v, %v", devs, err)
	}
	// Not an administrator: refused, and the session lives on.
	err = c.RemoveDevice(ctx, bob, devs[0].ID)
	var be *BrokerError
	if !errors.As(err, &be) || be.Status != http.StatusForbidden || !strings.Contains(err.Error(), "admin only") || errors.Is(err, ErrSessionEnded) {
		t.Fatalf("bob removes desk: %v", err)
	}

	ann, _ := sessionLogin(t, c, lb, "ann@example.com", "correct horse")
	if me, err := c.Me(ctx, ann); err != nil || !me.Admin {
		t.Fatalf("ann's me: %+v, %v", me, err)
	}
	if err := c.RemoveDevice(ctx, ann, devs[0].ID); err != nil {
		t.Fatalf("ann removes desk: %v", err)
	}
	if devs, err := c.Devices(ctx, bob); err != nil || len(devs) != 0 {
		t.Fatalf("devices after removal: %+v, %v", devs, err)
	}

	// Logged out: the token is refused as an ended session.
	if err := c.EndSession(ctx, ann); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Me(ctx, ann); !errors.Is(err, ErrSessionEnded) || !strings.Contains(err.Error(), "logged out") {
		t.Fatalf("me after logout: %v", err)
	}
	if _, err := c.Me(ctx, bob); err != nil {
		t.Fatalf("bob's session ended with ann's: %v", err)
	}
}

func TestAccountClientRefusesAWrongBroker(t *testing.T) {
	lb := realBroker(t)
	ctx := context.Background()
	// Another CA than the broker's: the TLS handshake fails, and that is no ended session.
	other := httptest.NewTLSServer(http.NotFoundHandler())
	defer other.Close()
	wrong := lb
	wrong.CAPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Certificate().Raw}))
	c := &AccountClient{Broker: func(context.Context) (wire.LocalBroker, error) { return wrong, nil }}
	if _, err := c.Me(ctx, "tok"); err == nil || errors.Is(err, ErrSessionEnded) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("me against a broker with another CA: %v", err)
	}
	for name, b := range map[string]wire.LocalBroker{
		"plain http": {URL: strings.Replace(lb.URL, "https:", "http:", 1)},
		"bad CA":     {URL: lb.URL, CAPEM: "not PEM"},
	} {
		c := &AccountClient{Broker: func(context.Context) (wire.LocalBroker, error) { return b, nil }}
		if _, err := c.StartSession(ctx); err == nil {
			t.Errorf("%s: started a session", name)
		}
	}
	c = &AccountClient{Broker: func(context.Context) (wire.LocalBroker, error) {
		return wire.LocalBroker{}, errors.New("weftd is not running")
	}}
	if _, err := c.StartSession(ctx); err == nil || !strings.Contains(err.Error(), "weftd is not running") {
		t.Fatalf("without weftd: %v", err)
	}
}
