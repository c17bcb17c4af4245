package tray

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/weftmesh/weft/assets"
	"github.com/weftmesh/weft/wire"
)

// find returns the item with id anywhere in items.
func find(t *testing.T, items []Item, id string) Item {
	t.Helper()
	var walk func([]Item) (Item, bool)
	walk = func(list []Item) (Item, bool) {
		for _, it := range list {
			if it.ID == id {
				return it, true
			}
			if c, ok := walk(it.Children); ok {
				return c, true
			}
		}
		return Item{}, false
	}
	it, ok := walk(items)
	if !ok {
		t.Fatalf("no item %q", id)
	}
	return it
}

// visible lists the labels of the shown top-level items.
func visible(items []Item) []string {
	var out []string
	for _, it := range items {
		if !it.Hidden && !it.Separator {
			out = append(out, it.Label)
		}
	}
	return out
}

func peer(id, name, ip string, online, connected bool) wire.PeerStatus {
	p := wire.PeerStatus{Device: wire.Device{ID: id, Name: name, Address: netip.MustParseAddr(ip), Online: online}, Connected: connected}
	if connected {
		p.Endpoint = netip.MustParseAddrPort("192.0.2.7:51820")
	}
	return p
}

func running() State {
	return State{Service: ServiceUp, Status: wire.Status{
		State: wire.StateRunning, Broker: "https://broker.test", BrokerConnected: true,
		Self: &wire.Device{ID: "me", Name: "laptop", Account: "acme", Address: netip.MustParseAddr("100.64.0.1")},
		Peers: []wire.PeerStatus{
			peer("p1", "desk", "100.64.0.2", true, true),
			peer("p2", "nas", "100.64.0.3", false, false),
			peer("p3", "phone", "100.64.0.4", true, false),
		},
	}}
}

// shape is the IDs of a menu's top level.
func shape(items []Item) string {
	var ids []string
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	return strings.Join(ids, ",")
}

func TestMenuShape(t *testing.T) {
	// While the device is in the mesh the shape stays put, so the view updates in place.
	stopped, busy := running(), running()
	stopped.Status.State, busy.Busy = wire.StateStopped, "connecting…"
	withNotice := running()
	withNotice.Notice = "Copied"
	want := shape(Menu(running()))
	for name, s := range map[string]State{"stopped": stopped, "busy": busy, "notice": withNotice} {
		if got := shape(Menu(s)); got != want {
			t.Errorf("%s: shape %s, want %s", name, got, want)
		}
	}
	// In every state no separator starts or ends the menu or follows another.
	all := []State{{}, {Service: ServiceDown}, running(), stopped,
		{Service: ServiceUp, Status: wire.Status{State: wire.StateNeedsLogin}},
		{Service: ServiceUp, Status: wire.Status{State: wire.StateRevoked}}}
	for i, s := range all {
		prevSep := true // at the start
		for _, it := range Menu(s) {
			if it.Hidden {
				continue
			}
			if it.Separator && prevSep {
				t.Errorf("state %d: separator %s at the start or after another", i, it.ID)
			}
			prevSep = it.Separator
		}
		if prevSep {
			t.Errorf("state %d: menu ends with a separator", i)
		}
	}
}

func TestMenuRunning(t *testing.T) {
	m := Menu(running())
	if got := strings.Join(visible(m), " | "); got != "weft: connected to acme | Disconnect | Log out | This device: laptop (100.64.0.1) | Devices (2 of 3 online) | Gateways | Quit weft tray" {
		t.Fatalf("visible items: %s", got)
	}
	if it := find(t, m, "toggle"); it.Action != (Disconnect{}) || it.Disabled {
		t.Errorf("toggle %+v", it)
	}
	if it := find(t, m, "self"); it.Action != (Copy{Text: "100.64.0.1"}) {
		t.Errorf("self %+v", it)
	}
	for id, want := range map[string]string{
		"device/p1": "desk — 100.64.0.2 — online, direct",
		"device/p2": "nas — 100.64.0.3 — offline",
		"device/p3": "phone — 100.64.0.4 — online, no tunnel yet",
	} {
		ip := strings.Fields(want)[2]
		it := find(t, m, id)
		if it.Label != want || it.Action != nil || len(it.Children) != 2 {
			t.Errorf("%s: %+v, want a submenu labelled %q", id, it, want)
		}
		if c := find(t, m, id+"/copy"); c.Label != "Copy "+ip || c.Action != (Copy{Text: ip}) || c.Hidden {
			t.Errorf("%s/copy: %+v", id, c)
		}
	}
	// Without a gateway API the picker is there but disabled, saying why.
	gw := find(t, m, "gateways")
	if !gw.Disabled || len(gw.Children) != 1 || gw.Children[0].Label != "No gateways" || gw.Children[0].Action != nil {
		t.Errorf("gateways without an API: %+v", gw)
	}
	// Without an account API there is no account item.
	if find(t, m, "account").Hidden != true {
		t.Error("account item shown without an account API")
	}
}

// removeShown reports whether device id's "Remove from account…" item shows, and checks
// that its confirmation removes that device.
func removeShown(t *testing.T, s State, id, name string) bool {
	t.Helper()
	m := Menu(s)
	rm := find(t, m, "device/"+id+"/remove")
	if rm.Label != "Remove from account…" || len(rm.Children) != 1 {
		t.Fatalf("remove item %+v", rm)
	}
	if c := rm.Children[0]; c.Action != (RemoveDevice{ID: id, Name: name}) || c.Label != "Remove "+name+" now" {
		t.Fatalf("remove confirmation %+v", c)
	}
	return !rm.Hidden
}

func TestMenuAccount(t *testing.T) {
	s := running()
	s.Accounts = true
	acct := find(t, Menu(s), "account")
	if acct.Hidden || acct.Label != "Log in to your account…" || acct.Action != (AccountLogIn{}) {
		t.Fatalf("account item without a session: %+v", acct)
	}
	if removeShown(t, s, "p1", "desk") {
		t.Error("admin items shown without a session")
	}

	// A member's session: logged in, no admin items.
	s.Session = &wire.AccountMe{Email: "bob@example.com", Account: "acme"}
	acct = find(t, Menu(s), "account")
	if acct.Label != "Log out of your account (bob@example.com)" || acct.Action != (AccountLogOut{}) || !strings.Contains(acct.Tooltip, "a member") {
		t.Fatalf("account item with a member's session: %+v", acct)
	}
	if removeShown(t, s, "p1", "desk") {
		t.Error("admin items shown to a non-admin")
	}

	// An administrator's session of this device's account: every device can be removed.
	s.Session = &wire.AccountMe{Email: "ann@example.com", Account: "acme", Admin: true}
	for _, p := range s.Status.Peers {
		if !removeShown(t, s, p.ID, p.Name) {
			t.Errorf("no remove item for %s in an admin's menu", p.Name)
		}
	}
	busy := s
	busy.Busy = "removing desk…"
	if rm := find(t, Menu(busy), "device/p1/remove/confirm"); !rm.Disabled {
		t.Error("remove enabled while an action runs")
	}
	// The menu keeps its shape whatever the session: the view updates it in place.
	signedOut := s
	signedOut.Session = nil
	if shape(Menu(s)) != shape(Menu(signedOut)) || shape(find(t, Menu(s), "devices").Children) != shape(find(t, Menu(signedOut), "devices").Children) {
		t.Error("the session changed the menu's shape")
	}

	// An administrator of another account gets no admin items for this device's peers.
	s.Session = &wire.AccountMe{Email: "cy@example.com", Account: "beta", Admin: true}
	if removeShown(t, s, "p1", "desk") {
		t.Error("admin items shown for another account's administrator")
	}
	if acct := find(t, Menu(s), "account"); !strings.Contains(acct.Tooltip, "this device is in acme") {
		t.Errorf("account tooltip %q does not say the accounts differ", acct.Tooltip)
	}

	// While a session login waits, the item opens its page.
	s.Session, s.SessionURL = nil, "https://broker.test/login/xyz"
	if acct := find(t, Menu(s), "account"); acct.Label != "Open the account login page…" || acct.Action != (OpenURL{URL: s.SessionURL}) {
		t.Errorf("account item while a login waits: %+v", acct)
	}
	// Outside a mesh there is no account item.
	out := State{Service: ServiceUp, Accounts: true, Status: wire.Status{State: wire.StateNeedsLogin, Broker: "https://broker.test"}}
	if !find(t, Menu(out), "account").Hidden {
		t.Error("account item shown outside a mesh")
	}
}

func TestMenuGateways(t *testing.T) {
	s := running()
	s.Gateways = &Gateways{Using: "g2", List: []Gateway{
		{ID: "g1", Name: "office", Address: netip.MustParseAddr("100.64.0.9")},
		{ID: "g2", Name: "home"},
	}}
	gw := find(t, Menu(s), "gateways")
	if gw.Disabled || len(gw.Children) != 3 {
		t.Fatalf("gateways %+v", gw)
	}
	want := []struct {
		label string
		check Check
		id    string
	}{{"None (use the local network)", Unchecked, ""}, {"Use office (100.64.0.9)", Unchecked, "g1"}, {"Use home", Checked, "g2"}}
	for i, w := range want {
		c := gw.Children[i]
		if c.Label != w.label || c.Check != w.check || c.Action != (UseGateway{ID: w.id}) {
			t.Errorf("gateway item %d: %+v, want %+v", i, c, w)
		}
	}
	s.Gateways.Using = ""
	if c := find(t, Menu(s), "gateway/"); c.Check != Checked {
		t.Errorf("None not checked when no gateway is used: %+v", c)
	}
	s.Gateways.List = nil
	if gw := find(t, Menu(s), "gateways"); !gw.Disabled || gw.Children[0].Label != "No gateways" {
		t.Errorf("empty gateway list: %+v", gw)
	}
}

func TestMenuStates(t *testing.T) {
	stopped := running()
	stopped.Status.State = wire.StateStopped
	failed := running()
	failed.Status.State, failed.Status.Reason = wire.StateStopped, "bring the tunnel up: no TUN"
	busy := running()
	busy.Busy = "Disconnecting…"
	lost := running()
	lost.Status.BrokerConnected, lost.Status.BrokerError = false, "dial tcp: timeout"
	login := State{Service: ServiceUp, Status: wire.Status{State: wire.StateNeedsLogin, Broker: "https://b.test"}}
	noBroker := State{Service: ServiceUp, Status: wire.Status{State: wire.StateNeedsLogin}}
	withFlag := noBroker
	withFlag.LoginBroker = "https://b.test"
	pending := login
	pending.Status.LoginURL = "https://b.test/login/abc"
	loginFailed := login
	loginFailed.Status.LoginError = "the login link expired before anyone signed in"
	revoked := State{Service: ServiceUp, Status: wire.Status{State: wire.StateRevoked, Reason: "removed by admin", Broker: "https://b.test"}}

	cases := []struct {
		name    string
		s       State
		visible string
		icon    string
	}{
		{"starting up", State{}, "weft: reaching the weft service… | Quit weft tray", assets.Connecting},
		{"service not running", State{Service: ServiceDown}, "weft service not running | Quit weft tray", assets.Error},
		{"denied", State{Service: ServiceDown, Denied: true}, "weft: no permission to use the weft service | Quit weft tray", assets.Error},
		{"stopped", stopped, "weft: disconnected | Connect | Log out | This device: laptop (100.64.0.1) | Devices (2 of 3 online) | Gateways | Quit weft tray", assets.Disconnected},
		{"tunnel failed", failed, "weft: tunnel failed | bring the tunnel up: no TUN | Connect | Log out | This device: laptop (100.64.0.1) | Devices (2 of 3 online) | Gateways | Quit weft tray", assets.Error},
		{"busy", busy, "weft: Disconnecting… | Disconnect | Log out | This device: laptop (100.64.0.1) | Devices (2 of 3 online) | Gateways | Quit weft tray", assets.Connected},
		{"broker lost", lost, "weft: connected to acme (broker unreachable) | broker: dial tcp: timeout | Disconnect | Log out | This device: laptop (100.64.0.1) | Devices (2 of 3 online) | Gateways | Quit weft tray", assets.Connected},
		{"needs login", login, "weft: not logged in | Log in… | Quit weft tray", assets.Disconnected},
		{"login pending", pending, "weft: waiting for you to sign in | Open login page… | Cancel login | Quit weft tray", assets.Connecting},
		{"login failed", loginFailed, "weft: login failed | the login link expired before anyone signed in | Log in… | Quit weft tray", assets.Error},
		{"revoked", revoked, "weft: removed from the mesh | removed by admin | Log in… | Log out | Quit weft tray", assets.Error},
	}
	for _, c := range cases {
		m := Menu(c.s)
		if got := strings.Join(visible(m), " | "); got != c.visible {
			t.Errorf("%s: visible\n  %s\nwant\n  %s", c.name, got, c.visible)
		}
		if got := Icon(c.s); got != c.icon {
			t.Errorf("%s: icon %s, want %s", c.name, got, c.icon)
		}
	}
	if it := find(t, Menu(busy), "toggle"); !it.Disabled {
		t.Error("toggle enabled while an action runs")
	}
	if it := find(t, Menu(stopped), "toggle"); it.Action != (Connect{}) {
		t.Errorf("stopped toggle %+v", it)
	}
	if it := find(t, Menu(pending), "login"); it.Action != (OpenURL{URL: "https://b.test/login/abc"}) {
		t.Errorf("pending login item %+v", it)
	}
	if it := find(t, Menu(pending), "logout"); it.Action != (LogOut{}) {
		t.Errorf("cancel login item %+v", it)
	}
	if it := find(t, Menu(noBroker), "login"); !it.Disabled || !strings.Contains(it.Tooltip, "--broker") {
		t.Errorf("login without a broker %+v", it)
	}
	if it := find(t, Menu(withFlag), "login"); it.Disabled || it.Action != (LogIn{}) {
		t.Errorf("login with --broker %+v", it)
	}
}

func TestNoticeAndClip(t *testing.T) {
	s := running()
	s.Notice = "Copied 100.64.0.2"
	if it := find(t, Menu(s), "notice"); it.Hidden || it.Label != "Copied 100.64.0.2" {
		t.Errorf("notice %+v", it)
	}
	long := strings.Repeat("x", 200)
	s.Notice = long
	it := find(t, Menu(s), "notice")
	if r := []rune(it.Label); len(r) != maxLabel || r[len(r)-1] != '…' || it.Tooltip != long {
		t.Errorf("long notice label %q tooltip %d chars", it.Label, len(it.Tooltip))
	}
	if tip := Tooltip(running()); tip != "weft: connected to acme\nlaptop 100.64.0.1" {
		t.Errorf("tooltip %q", tip)
	}
}
