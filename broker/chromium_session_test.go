package broker

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftmesh/weft/wire"
)

// TestSessionLoginInChromium drives an account-session sign-in in headless Chromium: the
// page says what signing in does, and the waiting client collects a session that the
// account API takes.
func TestSessionLoginInChromium(t *testing.T) {
	tb := startBroker(t, nil)
	br := startChromium(t, spkiOf(t, filepath.Join(tb.dir, serverFile)))
	tb.setupAccount(t, "acme")
	if err := tb.store.AddUserAs(t.Context(), "acme", "ann@example.com", "correct horse", true); err != nil {
		t.Fatal(err)
	}
	status, body := tb.do(t, http.MethodPost, wire.PathSessionStart, nil, nil)
	var start wire.LoginStartResponse
	if status != http.StatusOK || json.Unmarshal(body, &start) != nil {
		t.Fatalf("session start: %d %s", status, body)
	}

	text := br.navigate(start.LoginURL)
	if !strings.Contains(text, "Sign in to weft") || !strings.Contains(text, "weft tray") || strings.Contains(text, "add the device") {
		t.Fatalf("session login page reads:\n%s", text)
	}
	if ok := br.eval(`[...document.querySelectorAll("input:not([type=hidden])")].every(i => i.labels.length === 1 && i.labels[0].textContent.trim() !== "")`); ok != true {
		t.Fatal("a form field has no label")
	}
	br.typeInto("account", "acme")
	br.typeInto("email", "ann@example.com")
	br.typeInto("password", "wrong horse")
	if text = br.submit(); !strings.Contains(text, "Wrong account, email or password") {
		t.Fatalf("after a wrong password the page reads:\n%s", text)
	}
	br.typeInto("password", "correct horse")
	if text = br.submit(); !strings.Contains(text, "You are signed in") || !strings.Contains(text, "ann@example.com") {
		t.Fatalf("after signing in the page reads:\n%s", text)
	}

	status, body = tb.do(t, http.MethodPost, wire.PathSessionWait, mustJSON(t, wire.LoginWaitRequest{Token: start.Token}), nil)
	var got wire.SessionWaitResponse
	if status != http.StatusOK || json.Unmarshal(body, &got) != nil || got.Session == "" || got.Me == nil || !got.Me.Admin {
		t.Fatalf("wait after sign-in: %d %s", status, body)
	}
	// The browser never saw the session token.
	if html, _ := br.eval(`document.documentElement.outerHTML + document.cookie`).(string); strings.Contains(html, got.Session) {
		t.Fatal("the session token reached the page")
	}
	var me wire.AccountMe
	status, body = tb.bearer(t, http.MethodGet, wire.PathAccountMe, got.Session, nil)
	if status != http.StatusOK || json.Unmarshal(body, &me) != nil || me.Email != "ann@example.com" || !me.Admin {
		t.Fatalf("me with the collected session: %d %s", status, body)
	}
	if n := tb.deviceCount(t, "acme"); n != 0 {
		t.Fatalf("the session login registered %d devices", n)
	}
	text = br.navigate(start.LoginURL)
	if !strings.Contains(text, "already used") {
		t.Fatalf("the used link reads:\n%s", text)
	}
}
