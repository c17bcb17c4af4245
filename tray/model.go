// Package tray is weft-tray: a system-tray (menu bar) app that shows weftd's state and
// drives it through the local API. Its menu is a pure function of State (this file).
package tray

import (
	"fmt"
	"net/netip"

	"github.com/weftmesh/weft/assets"
	"github.com/weftmesh/weft/wire"
)

// Service is how the tray's link to weftd stands.
type Service int

const (
	ServiceConnecting Service = iota // not reached weftd yet (startup, or reconnecting)
	ServiceUp                        // following weftd's event stream
	ServiceDown                      // weftd is not running, or refused the tray
)

// Gateway is an exit node the account approved.
type Gateway struct {
	ID      string
	Name    string
	Address netip.Addr
}

// Gateways is what the gateway picker shows.
type Gateways struct {
	List  []Gateway
	Using string // ID of the gateway in use; "" for none
}

// State is everything the menu shows.
type State struct {
	Service Service
	// Denied: weftd refused the tray (the user is not in group weft); with ServiceDown.
	Denied bool
	Status wire.Status // weftd's status; valid with ServiceUp
	// LoginBroker is the broker "Log in…" uses when weftd knows none (weft-tray --broker).
	LoginBroker string
	// Gateways is nil when weftd offers no gateway selection.
	Gateways *Gateways
	// Accounts: the tray offers account sessions (it has an AccountAPI).
	Accounts bool
	// Session is the person's account session at the device's broker, as the broker
	// last described it; nil when not logged in to the account. Admin items show when
	// it is an administrator's of this device's account.
	Session *wire.AccountMe
	// SessionURL is the login page of an account session login that is waiting.
	SessionURL string
	Busy       string // an action in progress, e.g. "Disconnecting…"
	Notice     string // the outcome of the last action worth showing
}

// Check is whether an item shows a check mark.
type Check int

const (
	NoCheck   Check = iota // not a checkable item
	Unchecked              // a pick, not chosen
	Checked                // a pick, chosen
)

// Item is one menu entry. IDs are stable across states and unique in the whole menu, so
// a view can update items in place.
type Item struct {
	ID        string
	Label     string
	Tooltip   string
	Disabled  bool
	Hidden    bool
	Check     Check
	Separator bool
	Children  []Item
	Action    Intent // what a click asks for; nil: nothing
}

// Intent is what the user asked for by clicking an item.
type Intent interface{ isIntent() }

type (
	Connect       struct{}                  // bring the tunnel up
	Disconnect    struct{}                  // take the tunnel down
	LogIn         struct{}                  // start a browser login and open its page
	OpenURL       struct{ URL string }      // open a page in the browser
	LogOut        struct{}                  // log the device out (or cancel a waiting login)
	Copy          struct{ Text string }     // put text on the clipboard
	UseGateway    struct{ ID string }       // route through gateway ID ("" for none)
	RemoveDevice  struct{ ID, Name string } // remove a device from the account (admins)
	AccountLogIn  struct{}                  // start a browser login for an account session
	AccountLogOut struct{}                  // end the account session
	Quit          struct{}                  // end weft-tray
)

func (Connect) isIntent()       {}
func (Disconnect) isIntent()    {}
func (LogIn) isIntent()         {}
func (OpenURL) isIntent()       {}
func (LogOut) isIntent()        {}
func (Copy) isIntent()          {}
func (UseGateway) isIntent()    {}
func (RemoveDevice) isIntent()  {}
func (AccountLogIn) isIntent()  {}
func (AccountLogOut) isIntent() {}
func (Quit) isIntent()          {}

// maxLabel bounds a label: menus do not wrap. The whole text goes in the tooltip.
const maxLabel = 70

// Menu is the tray menu for s. Items keep their order and IDs in every state (those that
// do not apply are hidden), and separators show only between visible sections, so the
// shape of the menu changes only when whole sections appear or go.
func Menu(s State) []Item {
	st := s.Status
	up := s.Service == ServiceUp
	member := isMember(s)
	loginState := up && (st.State == wire.StateNeedsLogin || st.State == wire.StateRevoked)

	line := statusLine(s)
	items := []Item{
		{ID: "status", Label: clip(line), Tooltip: line, Disabled: true},
		notice(s),
		{ID: "sep-actions", Separator: true},
		toggle(s, member),
		login(s, loginState),
		logout(s, member, loginState),
		{ID: "sep-mesh", Separator: true},
		self(s, member),
		devices(s, member),
		gateways(s, member),
		{ID: "sep-account", Separator: true},
		account(s, member),
		{ID: "sep-quit", Separator: true},
		{ID: "quit", Label: "Quit weft tray", Action: Quit{}},
	}
	return tidySeparators(items)
}

// tidySeparators drops the separators that would show next to another or at an end:
// those of sections whose items are all hidden. (Separators themselves cannot be hidden.)
func tidySeparators(items []Item) []Item {
	var out []Item
	var sep *Item  // the separator before the current section
	shown := false // something visible is in out already
	var section []Item
	flush := func() {
		visible := false
		for _, it := range section {
			visible = visible || !it.Hidden
		}
		if visible && shown && sep != nil {
			out = append(out, *sep)
		}
		out = append(out, section...)
		shown = shown || visible
		section = nil
	}
	for _, it := range items {
		if it.Separator {
			flush()
			sep = &it
			continue
		}
		section = append(section, it)
	}
	flush()
	return out
}

// statusLine says in a few words how weft stands.
func statusLine(s State) string {
	switch s.Service {
	case ServiceConnecting:
		return "weft: reaching the weft service…"
	case ServiceDown:
		if s.Denied {
			return "weft: no permission to use the weft service"
		}
		return "weft service not running"
	}
	if s.Busy != "" {
		return "weft: " + s.Busy
	}
	st := s.Status
	switch st.State {
	case wire.StateNeedsLogin:
		switch {
		case st.LoginURL != "":
			return "weft: waiting for you to sign in"
		case st.LoginError != "":
			return "weft: login failed"
		}
		return "weft: not logged in"
	case wire.StateRevoked:
		return "weft: removed from the mesh"
	case wire.StateStopped:
		if st.Reason != "" {
			return "weft: tunnel failed"
		}
		return "weft: disconnected"
	case wire.StateStarting:
		return "weft: connecting…"
	case wire.StateRunning:
		line := "weft: connected"
		if st.Self != nil && st.Self.Account != "" {
			line += " to " + st.Self.Account
		}
		if !st.BrokerConnected {
			line += " (broker unreachable)"
		}
		return line
	}
	return "weft: " + st.State
}

// notice is the second line: the last action's outcome, else why weft is unwell.
func notice(s State) Item {
	text := s.Notice
	if text == "" && s.Service == ServiceUp {
		st := s.Status
		switch {
		case st.State == wire.StateNeedsLogin && st.LoginError != "":
			text = st.LoginError
		case st.State == wire.StateRevoked || st.State == wire.StateStopped:
			text = st.Reason
		case st.State == wire.StateRunning && !st.BrokerConnected && st.BrokerError != "":
			text = "broker: " + st.BrokerError
		}
	}
	return Item{ID: "notice", Label: clip(text), Tooltip: text, Disabled: true, Hidden: text == ""}
}

func toggle(s State, member bool) Item {
	it := Item{ID: "toggle", Label: "Connect", Action: Connect{}, Hidden: !member, Disabled: s.Busy != ""}
	if member && s.Status.State != wire.StateStopped {
		it.Label, it.Action = "Disconnect", Disconnect{}
	}
	return it
}

func login(s State, loginState bool) Item {
	it := Item{ID: "login", Label: "Log in…", Action: LogIn{}, Hidden: !loginState, Disabled: s.Busy != ""}
	switch {
	case s.Status.LoginURL != "":
		it.Label, it.Action = "Open login page…", OpenURL{URL: s.Status.LoginURL}
		it.Tooltip = "Sign in at " + s.Status.LoginURL
	case s.Status.Broker == "" && s.LoginBroker == "":
		it.Disabled = true
		it.Tooltip = "No broker known yet: run weft up --broker URL once, or start weft-tray with --broker URL"
	default:
		it.Tooltip = "Sign in in your browser to add this device to your mesh"
	}
	return it
}

func logout(s State, member, loginState bool) Item {
	it := Item{ID: "logout", Label: "Log out", Action: LogOut{}, Disabled: s.Busy != "",
		Tooltip: "Remove this device from the mesh and forget its identity"}
	switch {
	case member || s.Status.State == wire.StateRevoked && s.Service == ServiceUp:
	case loginState && s.Status.LoginURL != "":
		it.Label, it.Tooltip = "Cancel login", "Stop waiting for the sign-in"
	default:
		it.Hidden = true
	}
	return it
}

func self(s State, member bool) Item {
	it := Item{ID: "self", Hidden: true}
	if me := s.Status.Self; member && me != nil {
		ip := me.Address.String()
		it = Item{ID: "self", Label: clip(fmt.Sprintf("This device: %s (%s)", me.Name, ip)),
			Tooltip: "Click to copy " + ip, Action: Copy{Text: ip}}
	}
	return it
}

// pathOf describes how traffic reaches a peer now.
func pathOf(p wire.PeerStatus) string {
	switch {
	case !p.Online && !p.Connected:
		return "offline"
	case p.Connected && p.Endpoint.IsValid():
		return "direct"
	case p.Connected:
		return "connected"
	}
	return "no tunnel yet"
}

func devices(s State, member bool) Item {
	it := Item{ID: "devices", Label: "Devices", Hidden: !member}
	admin := isAdmin(s)
	online := 0
	for _, p := range s.Status.Peers {
		ip := p.Address.String()
		state := pathOf(p)
		if p.Online {
			online++
			if state != "offline" {
				state = "online, " + state
			}
		}
		label := fmt.Sprintf("%s — %s — %s", p.Name, ip, state)
		// Every device is a submenu of the same shape, admin or not (the remove item is
		// only hidden), so the view updates it in place when the session changes.
		id := "device/" + p.ID
		it.Children = append(it.Children, Item{ID: id, Label: clip(label), Tooltip: label, Children: []Item{
			{ID: id + "/copy", Label: "Copy " + ip, Tooltip: "Put " + ip + " on the clipboard", Action: Copy{Text: ip}},
			{ID: id + "/remove", Label: "Remove from account…", Hidden: !admin, Disabled: s.Busy != "",
				Tooltip: "Remove " + p.Name + " from the account: it leaves every device's mesh at once and must log in again to rejoin",
				Children: []Item{{ID: id + "/remove/confirm", Label: clip("Remove " + p.Name + " now"),
					Action: RemoveDevice{ID: p.ID, Name: p.Name}, Disabled: s.Busy != ""}}},
		}})
	}
	if len(it.Children) == 0 {
		it.Children = []Item{{ID: "devices/none", Label: "No other devices", Disabled: true}}
	} else {
		it.Label = fmt.Sprintf("Devices (%d of %d online)", online, len(s.Status.Peers))
	}
	return it
}

func gateways(s State, member bool) Item {
	it := Item{ID: "gateways", Label: "Gateways", Hidden: !member}
	if s.Gateways == nil || len(s.Gateways.List) == 0 {
		it.Disabled = true
		it.Tooltip = "No gateway is approved in this account"
		if s.Gateways == nil {
			it.Tooltip = "This weft service does not offer gateways"
		}
		it.Children = []Item{{ID: "gateways/none", Label: "No gateways", Disabled: true}}
		return it
	}
	pick := func(id string) Check {
		if s.Gateways.Using == id {
			return Checked
		}
		return Unchecked
	}
	dis := s.Busy != ""
	it.Children = append(it.Children, Item{ID: "gateway/", Label: "None (use the local network)",
		Check: pick(""), Action: UseGateway{ID: ""}, Disabled: dis})
	for _, g := range s.Gateways.List {
		label := g.Name
		if g.Address.IsValid() {
			label += " (" + g.Address.String() + ")"
		}
		it.Children = append(it.Children, Item{ID: "gateway/" + g.ID, Label: clip("Use " + label),
			Tooltip: "Send internet traffic through " + label, Check: pick(g.ID), Action: UseGateway{ID: g.ID}, Disabled: dis})
	}
	return it
}

// isMember reports whether weftd is up and its device is in a mesh (running or not).
func isMember(s State) bool {
	st := s.Status.State
	return s.Service == ServiceUp && (st == wire.StateRunning || st == wire.StateStarting || st == wire.StateStopped)
}

// isAdmin reports whether the account session is an administrator's of this device's
// account: only then do admin items show.
func isAdmin(s State) bool {
	me, self := s.Session, s.Status.Self
	return me != nil && me.Admin && self != nil && me.Account == self.Account
}

// account is the person's account session: log in, the login page while it waits, or
// log out.
func account(s State, member bool) Item {
	it := Item{ID: "account", Label: "Log in to your account…", Action: AccountLogIn{}, Hidden: !member || !s.Accounts,
		Disabled: s.Busy != "", Tooltip: "Sign in in your browser to act on your account: administrators can remove devices"}
	switch me := s.Session; {
	case me != nil:
		role := "a member"
		if me.Admin {
			role = "an administrator"
		}
		it.Label, it.Action = clip("Log out of your account ("+me.Email+")"), AccountLogOut{}
		it.Tooltip = fmt.Sprintf("Logged in to %s as %s, %s", me.Account, me.Email, role)
		if self := s.Status.Self; self != nil && self.Account != me.Account {
			it.Tooltip += "; this device is in " + self.Account + ", so no account actions show here"
		}
	case s.SessionURL != "":
		it.Label, it.Action = "Open the account login page…", OpenURL{URL: s.SessionURL}
		it.Tooltip = "Sign in at " + s.SessionURL
	}
	return it
}

// Icon is the asset state of the tray icon for s.
func Icon(s State) string {
	if s.Service != ServiceUp {
		if s.Service == ServiceConnecting {
			return assets.Connecting
		}
		return assets.Error
	}
	st := s.Status
	switch {
	case st.State == wire.StateRunning:
		return assets.Connected
	case st.State == wire.StateStarting, st.LoginURL != "", s.Busy != "":
		return assets.Connecting
	case st.State == wire.StateRevoked, st.Reason != "", st.LoginError != "":
		return assets.Error
	}
	return assets.Disconnected
}

// Tooltip is the tray icon's tooltip for s: the status line and this device.
func Tooltip(s State) string {
	t := statusLine(s)
	if me := s.Status.Self; s.Service == ServiceUp && me != nil {
		t += "\n" + me.Name + " " + me.Address.String()
	}
	return t
}

// clip shortens text for a menu label.
func clip(text string) string {
	r := []rune(text)
	if len(r) <= maxLabel {
		return text
	}
	return string(r[:maxLabel-1]) + "…"
}
