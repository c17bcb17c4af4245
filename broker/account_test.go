package broker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/wire"
)

// accountEnv is a broker with account acme (ann, an administrator, and bob, not one),
// account beta with its own administrator, and a store clock the test moves.
type accountEnv struct {
	tb    *testBroker
	clock *fakeClock
}

func newAccountEnv(t *testing.T) *accountEnv {
	t.Helper()
	clock := &fakeClock{t: time.Now()}
	tb := startBroker(t, func(c *Config) { c.StoreOptions.Now = clock.Now })
	ctx := t.Context()
	for _, a := range []string{"acme", "beta"} {
		tb.setupAccount(t, a)
	}
	for _, u := range []struct {
		account, email string
		admin          bool
	}{{"acme", "ann@example.com", true}, {"acme", "bob@example.com", false}, {"beta", "cy@example.com", true}} {
		if err := tb.store.AddUserAs(ctx, u.account, u.email, "correct horse", u.admin); err != nil {
			t.Fatal(err)
		}
	}
	return &accountEnv{tb: tb, clock: clock}
}

// session issues a session for email in account straight from the store.
func (e *accountEnv) session(t *testing.T, account, email string) string {
	t.Helper()
	a, err := e.tb.store.AccountByName(t.Context(), account)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := e.tb.store.CreateSession(t.Context(), a.ID, email, wire.SessionTTL)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (e *accountEnv) devices(t *testing.T, token string) []string {
	t.Helper()
	status, body := e.tb.bearer(t, http.MethodGet, wire.PathAccountDevices, token, nil)
	var out wire.AccountDevices
	if status != http.StatusOK || json.Unmarshal(body, &out) != nil {
		t.Fatalf("devices: %d %s", status, body)
	}
	var names []string
	for _, d := range out.Devices {
		names = append(names, d.Name)
	}
	slices.Sort(names)
	return names
}

func TestAccountRemoveDevice(t *testing.T) {
	e := newAccountEnv(t)
	tb := e.tb
	key := tb.authKey(t, "acme", true)
	laptop, desk := tb.newDevice(t, "laptop"), tb.newDevice(t, "desk")
	laptop.register(t, key)
	desk.register(t, key)
	laptopMap := laptop.openMap(t)
	laptopMap.next(t)
	deskMap := desk.openMap(t)
	deskMap.next(t)
	ann, bob, cy := e.session(t, "acme", "ann@example.com"), e.session(t, "acme", "bob@example.com"), e.session(t, "beta", "cy@example.com")

	// Any user of the account sees its devices; another account's admin sees none of them.
	if got := e.devices(t, bob); !slices.Equal(got, []string{"desk", "laptop"}) {
		t.Fatalf("bob sees %v", got)
	}
	if got := e.devices(t, cy); len(got) != 0 {
		t.Fatalf("beta's admin sees %v", got)
	}
	var me wire.AccountMe
	if status, body := tb.bearer(t, http.MethodGet, wire.PathAccountMe, bob, nil); status != http.StatusOK ||
		json.Unmarshal(body, &me) != nil || me.Admin || me.Email != "bob@example.com" || me.Account != "acme" {
		t.Fatalf("bob's me: %d %s", status, body)
	}

	remove := func(token, device string) (int, string) {
		t.Helper()
		status, body := tb.bearer(t, http.MethodPost, wire.PathAccountRemove, token, mustJSON(t, wire.AccountRemoveRequest{Device: device}))
		if status == http.StatusOK {
			return status, ""
		}
		return status, errorLine(t, body)
	}
	// Not an administrator: refused, nothing changes.
	if status, msg := remove(bob, desk.ID); status != http.StatusForbidden || !strings.Contains(msg, "admin only") {
		t.Fatalf("bob removes desk: %d %s", status, msg)
	}
	// Another account's administrator cannot reach acme's devices.
	if status, _ := remove(cy, desk.ID); status != http.StatusNotFound {
		t.Fatalf("beta's admin removes acme's desk: %d", status)
	}
	if n := tb.deviceCount(t, "acme"); n != 2 {
		t.Fatalf("%d devices after refused removals", n)
	}

	// An administrator's removal goes the broker's one way: the device's stream is revoked
	// and its peers drop it.
	status, body := tb.bearer(t, http.MethodPost, wire.PathAccountRemove, ann, mustJSON(t, wire.AccountRemoveRequest{Device: desk.ID}))
	var removed wire.Device
	if status != http.StatusOK || json.Unmarshal(body, &removed) != nil || removed.ID != desk.ID || removed.Name != "desk" {
		t.Fatalf("ann removes desk: %d %s", status, body)
	}
	if u := deskMap.next(t); u.Revoked != "removed by administrator ann@example.com" {
		t.Fatalf("desk's stream got %+v, want revoked", u)
	}
	deskMap.closed(t)
	for deadline := time.Now().Add(wait); ; {
		if u := laptopMap.next(t); slices.Contains(u.Removed, desk.ID) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("laptop's map never dropped desk")
		}
	}
	if got := e.devices(t, ann); !slices.Equal(got, []string{"laptop"}) {
		t.Fatalf("after removal: %v", got)
	}
	if status, _ := desk.authed(t, http.MethodPost, wire.PathEndpoints, []byte(`{"listen_port":51820}`)); status != http.StatusUnauthorized {
		t.Fatalf("removed device still authenticates: %d", status)
	}
	// By name too; unknown devices are 404.
	if status, msg := remove(ann, "laptop"); status != http.StatusOK {
		t.Fatalf("remove by name: %d %s", status, msg)
	}
	if status, _ := remove(ann, "laptop"); status != http.StatusNotFound {
		t.Fatalf("removing twice: %d", status)
	}

	// The role is checked on every request: taken away, the same session is refused.
	if err := tb.store.SetUserAdmin(t.Context(), "acme", "ann@example.com", false); err != nil {
		t.Fatal(err)
	}
	laptop2 := tb.newDevice(t, "laptop2")
	laptop2.register(t, key)
	if status, _ := remove(ann, "laptop2"); status != http.StatusForbidden {
		t.Fatalf("removal after the role was taken away: %d", status)
	}
}

func TestAccountAPIRefusals(t *testing.T) {
	e := newAccountEnv(t)
	tb := e.tb
	ann := e.session(t, "acme", "ann@example.com")
	msgOf := func(status int, body []byte) (int, string) { return status, errorLine(t, body) }

	// No or bad credentials: 401 saying why, with a Bearer challenge.
	for name, hdr := range map[string]http.Header{
		"none":      nil,
		"basic":     {"Authorization": {"Basic YW5uOnB3"}},
		"empty":     {"Authorization": {"Bearer "}},
		"malformed": {"Authorization": {"Bearer not-a-token"}},
		"unknown":   {"Authorization": {"Bearer " + strings.Repeat("A", 43)}},
	} {
		req, _ := http.NewRequest(http.MethodGet, tb.url+wire.PathAccountMe, nil)
		for k, v := range hdr {
			req.Header[k] = v
		}
		resp, err := tb.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var eb wire.Error
		json.NewDecoder(resp.Body).Decode(&eb)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || eb.Error == "" || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: %d %q %q", name, resp.StatusCode, eb.Error, resp.Header.Get("WWW-Authenticate"))
		}
	}

	// Malformed requests from a valid session: 4xx, nothing removed.
	tb.newDevice(t, "laptop").register(t, tb.authKey(t, "acme", false))
	for name, c := range map[string]struct {
		method string
		body   string
		want   int
	}{
		"empty device":  {http.MethodPost, `{"device":""}`, http.StatusBadRequest},
		"unknown field": {http.MethodPost, `{"device":"laptop","force":true}`, http.StatusBadRequest},
		"not JSON":      {http.MethodPost, `device=laptop`, http.StatusBadRequest},
		"two objects":   {http.MethodPost, `{"device":"laptop"}{}`, http.StatusBadRequest},
		"empty body":    {http.MethodPost, ``, http.StatusBadRequest},
		"oversized":     {http.MethodPost, `{"device":"` + strings.Repeat("x", wire.MaxRequestBody) + `"}`, http.StatusRequestEntityTooLarge},
		"GET":           {http.MethodGet, ``, http.StatusMethodNotAllowed},
	} {
		status, body := tb.bearer(t, c.method, wire.PathAccountRemove, ann, []byte(c.body))
		if status != c.want {
			t.Errorf("%s: %d %s, want %d", name, status, body, c.want)
		} else {
			errorLine(t, body)
		}
	}
	if status, body := tb.bearer(t, http.MethodPost, wire.PathSessionLogout, ann, []byte(`{"all":true}`)); status != http.StatusBadRequest {
		t.Errorf("logout with an unknown field: %d %s", status, body)
	}
	if n := tb.deviceCount(t, "acme"); n != 1 {
		t.Fatalf("%d devices after malformed removals", n)
	}

	// Expired: 401 saying so.
	e.clock.Advance(wire.SessionTTL)
	status, msg := msgOf(tb.bearer(t, http.MethodGet, wire.PathAccountMe, ann, nil))
	if status != http.StatusUnauthorized || !strings.Contains(msg, "session expired") {
		t.Fatalf("expired session: %d %s", status, msg)
	}
}

// TestSessionTokensStoredHashed looks for a session token in the database's files: only
// its SHA-256 may be there.
func TestSessionTokensStoredHashed(t *testing.T) {
	e := newAccountEnv(t)
	tok := e.session(t, "acme", "ann@example.com")
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(tok))
	files, _ := filepath.Glob(filepath.Join(e.tb.dir, "broker.db*")) // the database, its WAL and shared memory
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if bytes.Contains(all, []byte(tok)) || bytes.Contains(all, raw) {
		t.Fatal("the session token is in the database files")
	}
	if !bytes.Contains(all, sum[:]) {
		t.Fatalf("the token's hash is not in %v either: did the test read the right files?", files)
	}
	if _, err := e.tb.store.SessionByToken(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
}
