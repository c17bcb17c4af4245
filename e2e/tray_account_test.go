//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/weftmesh/weft/internal/labrun"
	"github.com/weftmesh/weft/internal/netlab"
	"github.com/weftmesh/weft/wire"
)

// accountSession gets an account session the way weft-tray does (start, sign in on the
// page, wait), with hc as both the tray and the browser.
func accountSession(t *testing.T, hc *http.Client, brokerURL, email, password string) string {
	t.Helper()
	post := func(path, body string, out any) {
		t.Helper()
		resp, err := hc.Post(brokerURL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(out) != nil {
			t.Fatalf("%s: %s", path, resp.Status)
		}
	}
	var start wire.LoginStartResponse
	post(wire.PathSessionStart, "{}", &start)
	if page := signIn(t, hc, start.LoginURL, "acme", email, password); !strings.Contains(page, "You are signed in") {
		t.Fatalf("session sign-in page:\n%s", page)
	}
	var got wire.SessionWaitResponse
	post(wire.PathSessionWait, `{"token":"`+start.Token+`"}`, &got)
	if got.Session == "" || got.Me == nil || got.Me.Email != email {
		t.Fatalf("session wait answered %+v", got)
	}
	return got.Session
}

// sessionStatus is the broker's status for GET /v1/account/me with token.
func sessionStatus(t *testing.T, hc *http.Client, brokerURL, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, brokerURL+wire.PathAccountMe, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestTrayAccountAdmin runs the real weft-tray with account sessions in the keyring (a
// Secret Service on its session bus): a member's session shows no admin items and logs out
// from the menu; an administrator's shows "Remove from account…" under each device, and
// clicking it removes the device from the account at the broker.
func TestTrayAccountAdmin(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, "trayacct")
	bins := labrun.Build(t)
	bin := buildTray(t, bins)
	broker := labrun.StartBroker(t, bins, lab.AddHost("broker", lab.Internet()))
	key := broker.NewAccount("acme")
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("correct horse\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	broker.MustAdmin("user", "add", "acme", "ann@example.com", "--password-file", pw, "--admin")
	broker.MustAdmin("user", "add", "acme", "bob@example.com", "--password-file", pw)
	desk := labrun.StartDevice(t, bins, lab.AddHost("desk", lab.Internet()), "desk")
	desk.Up(broker, key)
	laptop := labrun.StartDevice(t, bins, lab.AddHost("laptop", lab.Internet()), "laptop")
	laptop.Up(broker, key)
	deskSelf := desk.Self()
	// The tray files sessions under the broker URL as weftd reports it.
	brokerURL := laptop.MustStatus().Broker
	keyringEntry := map[string]string{"service": "weft", "username": brokerURL}

	hc := browser(t, laptop.Host, broker.CA())
	bob := accountSession(t, hc, broker.URL(), "bob@example.com", "correct horse")
	ann := accountSession(t, hc, broker.URL(), "ann@example.com", "correct horse")

	// withKeyring serves a keyring holding token on the tray's bus.
	var secrets *secretService
	withKeyring := func(token string) func(*dbus.Conn) {
		return func(c *dbus.Conn) {
			ss, err := serveSecrets(c)
			if err != nil {
				t.Fatal(err)
			}
			if err := ss.put(keyringEntry, token); err != nil {
				t.Fatal(err)
			}
			secrets = ss
		}
	}
	deskItem := "desk — " + deskSelf.Address.String() + " — online"

	// A member's session: logged in, no admin items.
	tb := startTrayWith(t, laptop.Host, bin, laptop.Socket, withKeyring(bob))
	m := tb.waitMenu("member's session", func(m menuNode) error {
		if _, ok := m.find("Log out of your account (bob@example.com)"); !ok {
			return fmt.Errorf("no account logout item for bob:\n%s", render(m, ""))
		}
		if _, ok := m.find("Copy " + deskSelf.Address.String()); !ok {
			return fmt.Errorf("desk not listed:\n%s", render(m, ""))
		}
		return nil
	})
	if it, ok := m.find("Remove from account…"); ok {
		t.Fatalf("a member's menu shows %q:\n%s", it.label(), render(m, ""))
	}
	tb.dump("account-member", m)
	// Logging out from the menu ends the session at the broker and in the keyring.
	tb.click(m, "Log out of your account")
	tb.waitMenu("logged out of the account", func(m menuNode) error {
		if _, ok := m.find("Log in to your account…"); !ok {
			return fmt.Errorf("no account login item:\n%s", render(m, ""))
		}
		return nil
	})
	if tok, ok := secrets.get(keyringEntry); ok {
		t.Fatalf("the keyring still holds %q", tok)
	}
	if status := sessionStatus(t, hc, broker.URL(), bob); status != http.StatusUnauthorized {
		t.Fatalf("bob's session after logging out: %d", status)
	}
	tb.proc.Stop()

	// An administrator's session: each device has "Remove from account…", which removes it.
	tb = startTrayWith(t, laptop.Host, bin, laptop.Socket, withKeyring(ann))
	m = tb.waitMenu("administrator's session", func(m menuNode) error {
		if _, ok := m.find("Log out of your account (ann@example.com)"); !ok {
			return fmt.Errorf("no account logout item for ann:\n%s", render(m, ""))
		}
		if _, ok := m.find("Remove from account…"); !ok {
			return fmt.Errorf("no admin items:\n%s", render(m, ""))
		}
		return nil
	})
	dev, ok := m.find(deskItem)
	if !ok {
		t.Fatalf("no %q:\n%s", deskItem, render(m, ""))
	}
	if _, ok := dev.find("Remove from account…"); !ok {
		t.Fatalf("desk's submenu has no remove item:\n%s", render(dev, ""))
	}
	tb.dump("account-admin", m)
	tb.click(m, "Remove desk now")

	// The broker no longer has desk, desk hears it was removed, and the tray drops it.
	labrun.Eventually(t, 20*time.Second, "desk gone from the broker", func() error {
		var devs []struct{ Name string }
		if err := json.Unmarshal([]byte(broker.MustAdmin("device", "list", "acme", "--json")), &devs); err != nil {
			return err
		}
		for _, d := range devs {
			if d.Name == "desk" {
				return fmt.Errorf("the broker still lists desk: %+v", devs)
			}
		}
		return nil
	})
	labrun.Eventually(t, 20*time.Second, "desk revoked", func() error {
		if st := desk.MustStatus(); st.State != wire.StateRevoked || !strings.Contains(st.Reason, "ann@example.com") {
			return fmt.Errorf("desk is %s (%s)", st.State, st.Reason)
		}
		return nil
	})
	tb.waitMenu("desk gone from the tray", func(m menuNode) error {
		if _, ok := m.find("No other devices"); !ok {
			return fmt.Errorf("desk still listed:\n%s", render(m, ""))
		}
		return nil
	})
	if status := sessionStatus(t, hc, broker.URL(), ann); status != http.StatusOK {
		t.Fatalf("ann's session after the removal: %d", status)
	}
}
