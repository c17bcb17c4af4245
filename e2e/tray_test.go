//go:build linux

package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/weftmesh/weft/internal/labrun"
	"github.com/weftmesh/weft/internal/netlab"
	"github.com/weftmesh/weft/wire"
)

// trayDumpEnv names a directory to save the tray's menu in each state to (docs/tray).
const trayDumpEnv = "WEFT_TRAY_DUMP"

var (
	trayOnce sync.Once
	trayBin  string
	trayErr  error
)

// buildTray returns weft-tray: from $WEFT_BIN_DIR when build.sh built it, else built once.
func buildTray(t *testing.T, bins labrun.Binaries) string {
	t.Helper()
	trayOnce.Do(func() {
		if p := filepath.Join(bins.Dir, "weft-tray"); fileExists(p) {
			trayBin = p
			return
		}
		dir, err := os.MkdirTemp("", "weft-tray-")
		if err != nil {
			trayErr = err
			return
		}
		trayBin = filepath.Join(dir, "weft-tray")
		cmd := exec.Command("go", "build", "-o", trayBin, "../cmd/weft-tray")
		if out, err := cmd.CombinedOutput(); err != nil {
			trayErr = fmt.Errorf("go build weft-tray: %w: %s", err, out)
		}
	})
	if trayErr != nil {
		t.Fatal(trayErr)
	}
	return trayBin
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// menuNode is one item of a dbusmenu layout.
type menuNode struct {
	ID       int32
	Props    map[string]dbus.Variant
	Children []menuNode
}

func (n menuNode) str(key string) string {
	v, ok := n.Props[key]
	if !ok {
		return ""
	}
	s, _ := v.Value().(string)
	return s
}

func (n menuNode) flag(key string, dflt bool) bool {
	v, ok := n.Props[key]
	if !ok {
		return dflt
	}
	b, _ := v.Value().(bool)
	return b
}

func (n menuNode) label() string    { return n.str("label") }
func (n menuNode) visible() bool    { return n.flag("visible", true) }
func (n menuNode) enabled() bool    { return n.flag("enabled", true) }
func (n menuNode) separator() bool  { return n.str("type") == "separator" }
func (n menuNode) hasSubmenu() bool { return n.str("children-display") == "submenu" }

func (n menuNode) checked() bool {
	v, ok := n.Props["toggle-state"]
	if !ok {
		return false
	}
	i, _ := v.Value().(int32)
	return i == 1
}

// find returns the first visible item whose label starts with prefix, searching the
// submenus of visible items.
func (n menuNode) find(prefix string) (menuNode, bool) {
	for _, c := range n.Children {
		if !c.visible() || c.separator() {
			continue
		}
		if strings.HasPrefix(c.label(), prefix) {
			return c, true
		}
		if f, ok := c.find(prefix); ok {
			return f, true
		}
	}
	return menuNode{}, false
}

func parseNode(v any) (menuNode, error) {
	f, ok := v.([]any)
	if !ok || len(f) != 3 {
		return menuNode{}, fmt.Errorf("layout node %T is not (ia{sv}av)", v)
	}
	id, ok1 := f[0].(int32)
	props, ok2 := f[1].(map[string]dbus.Variant)
	kids, ok3 := f[2].([]dbus.Variant)
	if !ok1 || !ok2 || !ok3 {
		return menuNode{}, fmt.Errorf("layout node fields %T %T %T", f[0], f[1], f[2])
	}
	n := menuNode{ID: id, Props: props}
	for _, k := range kids {
		c, err := parseNode(k.Value())
		if err != nil {
			return n, err
		}
		n.Children = append(n.Children, c)
	}
	return n, nil
}

// trayBus is the test's view of a running weft-tray over D-Bus.
type trayBus struct {
	t    *testing.T
	conn *dbus.Conn
	name string       // the tray's StatusNotifierItem bus name
	proc *netlab.Proc // dbus-run-session, with weft-tray under it
}

// startTray runs weft-tray on host h against weftd's socket under its own session bus
// (dbus-run-session with a bus on a socket file, which every namespace reaches) and finds
// its StatusNotifierItem.
func startTray(t *testing.T, h *netlab.Host, bin, socket string) *trayBus {
	t.Helper()
	return startTrayWith(t, h, bin, socket, nil)
}

// startTrayWith is startTray that first runs setup (if not nil) on the session bus, before
// weft-tray starts: to serve what the desktop would, such as a keyring.
func startTrayWith(t *testing.T, h *netlab.Host, bin, socket string, setup func(*dbus.Conn)) *trayBus {
	t.Helper()
	for _, tool := range []string{"dbus-run-session", "dbus-daemon"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: ./build.sh deps installs it (Debian package dbus)", tool)
		}
	}
	dir := t.TempDir()
	busPath := filepath.Join(dir, "bus")
	conf := fmt.Sprintf(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`, busPath)
	confPath := filepath.Join(dir, "session.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// weft-tray starts once the test has set the bus up: when the file ready exists.
	ready := filepath.Join(dir, "ready")
	tb := &trayBus{t: t}
	tb.proc = h.Start("dbus-run-session", "--config-file="+confPath, "--", "sh", "-c",
		`while [ ! -e "$0" ]; do sleep 0.05; done; exec "$@"`, ready, bin, "--socket", socket, "--log-level", "debug")
	labrun.Eventually(t, 20*time.Second, "the tray's session bus", func() error {
		c, err := dbus.Connect("unix:path=" + busPath)
		if err != nil {
			return err
		}
		tb.conn = c
		t.Cleanup(func() { c.Close() })
		return nil
	})
	if setup != nil {
		setup(tb.conn)
	}
	if err := os.WriteFile(ready, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	labrun.Eventually(t, 20*time.Second, "weft-tray on the session bus", func() error {
		var names []string
		if err := tb.conn.BusObject().Call("org.freedesktop.DBus.ListNames", 0).Store(&names); err != nil {
			return err
		}
		for _, n := range names {
			if strings.HasPrefix(n, "org.kde.StatusNotifierItem-") {
				tb.name = n
				return nil
			}
		}
		return fmt.Errorf("no StatusNotifierItem among %v", names)
	})
	return tb
}

// layout reads the whole menu. systray answers the first request after a rebuild one level
// deep, so an answer with an empty submenu is asked again.
func (tb *trayBus) layout() (menuNode, error) {
	obj := tb.conn.Object(tb.name, "/StatusNotifierItem/menu")
	for range 5 {
		var rev uint32
		var raw []any
		call := obj.Call("com.canonical.dbusmenu.GetLayout", 0, int32(0), int32(-1), []string{})
		if call.Err != nil {
			return menuNode{}, call.Err
		}
		if len(call.Body) != 2 {
			return menuNode{}, fmt.Errorf("GetLayout answered %d values", len(call.Body))
		}
		rev, _ = call.Body[0].(uint32)
		raw, _ = call.Body[1].([]any)
		root, err := parseNode(raw)
		if err != nil {
			return root, fmt.Errorf("layout revision %d: %w", rev, err)
		}
		if complete(root) {
			return root, nil
		}
	}
	return menuNode{}, fmt.Errorf("the menu layout stays incomplete")
}

func complete(n menuNode) bool {
	for _, c := range n.Children {
		if c.hasSubmenu() && len(c.Children) == 0 || !complete(c) {
			return false
		}
	}
	return true
}

// waitMenu waits until the menu satisfies cond and returns it.
func (tb *trayBus) waitMenu(what string, cond func(menuNode) error) menuNode {
	tb.t.Helper()
	var m menuNode
	labrun.Eventually(tb.t, 30*time.Second, "tray menu: "+what, func() error {
		var err error
		if m, err = tb.layout(); err != nil {
			return err
		}
		// A menu being rebuilt shows its items one by one: Quit comes last.
		if n := len(m.Children); n == 0 || m.Children[n-1].label() != "Quit weft tray" {
			return fmt.Errorf("menu incomplete:\n%s", render(m, ""))
		}
		return cond(m)
	})
	return m
}

// statusIs is a waitMenu condition: the first item reads want.
func statusIs(want string) func(menuNode) error {
	return func(m menuNode) error {
		if len(m.Children) == 0 || m.Children[0].label() != want {
			return fmt.Errorf("status line is not %q:\n%s", want, render(m, ""))
		}
		return nil
	}
}

// click sends a dbusmenu "clicked" event for the visible item labelled label.
func (tb *trayBus) click(m menuNode, label string) {
	tb.t.Helper()
	it, ok := m.find(label)
	if !ok || !it.enabled() {
		tb.t.Fatalf("no enabled item %q in\n%s", label, render(m, ""))
	}
	obj := tb.conn.Object(tb.name, "/StatusNotifierItem/menu")
	if err := obj.Call("com.canonical.dbusmenu.Event", 0, it.ID, "clicked", dbus.MakeVariant(""), uint32(0)).Err; err != nil {
		tb.t.Fatalf("click %q: %v", label, err)
	}
}

// sniProps reads the StatusNotifierItem's tooltip text and icon sizes.
func (tb *trayBus) sniProps() (tooltip string, icons []string, err error) {
	obj := tb.conn.Object(tb.name, "/StatusNotifierItem")
	var tip dbus.Variant
	if tip, err = obj.GetProperty("org.kde.StatusNotifierItem.ToolTip"); err != nil {
		return "", nil, err
	}
	if f, ok := tip.Value().([]any); ok && len(f) == 4 {
		tooltip, _ = f[2].(string)
	}
	pix, err := obj.GetProperty("org.kde.StatusNotifierItem.IconPixmap")
	if err != nil {
		return "", nil, err
	}
	if list, ok := pix.Value().([][]any); ok {
		for _, p := range list {
			if len(p) == 3 {
				data, _ := p[2].([]byte)
				icons = append(icons, fmt.Sprintf("%vx%v sha256:%x", p[0], p[1], sha256.Sum256(data)))
			}
		}
	}
	return tooltip, icons, nil
}

// icon returns the tray icon as the StatusNotifierItem shows it.
func (tb *trayBus) icon() string {
	tb.t.Helper()
	_, icons, err := tb.sniProps()
	if err != nil || len(icons) != 1 || !strings.HasPrefix(icons[0], "32x32 ") {
		tb.t.Fatalf("StatusNotifierItem icons %v: %v", icons, err)
	}
	return icons[0]
}

// render prints the visible part of a layout as indented text: each item's label, then
// what is unusual about it.
func render(n menuNode, indent string) string {
	var b strings.Builder
	for _, c := range n.Children {
		if c.separator() {
			b.WriteString(indent + "----\n")
			continue
		}
		if !c.visible() {
			continue
		}
		var notes []string
		if !c.enabled() {
			notes = append(notes, "disabled")
		}
		if c.str("toggle-type") != "" {
			if c.checked() {
				notes = append(notes, "checked")
			} else {
				notes = append(notes, "unchecked")
			}
		}
		line := indent + c.label()
		if c.hasSubmenu() {
			line += " ▸"
		}
		if len(notes) > 0 {
			line += "  [" + strings.Join(notes, ", ") + "]"
		}
		b.WriteString(line + "\n")
		if len(c.Children) > 0 {
			b.WriteString(render(c, indent+"    "))
		}
	}
	return b.String()
}

// dump saves the menu in a state to $WEFT_TRAY_DUMP/state.txt when that is set.
func (tb *trayBus) dump(state string, m menuNode) {
	tb.t.Helper()
	dir := os.Getenv(trayDumpEnv)
	if dir == "" {
		return
	}
	tip, icons, err := tb.sniProps()
	if err != nil {
		tb.t.Fatal(err)
	}
	text := fmt.Sprintf("# weft-tray, %s: com.canonical.dbusmenu layout read over D-Bus by e2e/tray_test.go\n"+
		"# (hidden items left out; mesh addresses depend on the run)\n# StatusNotifierItem ToolTip: %q\n# IconPixmap: %s\n\n%s",
		state, tip, strings.Join(icons, ", "), render(m, ""))
	if err := os.WriteFile(filepath.Join(dir, state+".txt"), []byte(text), 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

// browser is an HTTP client with cookies that runs inside a lab host, like a person's browser.
func browser(t *testing.T, h *netlab.Host, caFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return h.Dial(ctx, network, addr)
		},
	}}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn fills the login page at loginURL as a person would.
func signIn(t *testing.T, hc *http.Client, loginURL, account, email, password string) string {
	t.Helper()
	resp, err := hc.Get(loginURL)
	if err != nil {
		t.Fatalf("open the login page: %v", err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("login page: %d %s", resp.StatusCode, page)
	}
	resp, err = hc.PostForm(loginURL, url.Values{"csrf": {string(m[1])}, "account": {account}, "email": {email}, "password": {password}})
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
	defer resp.Body.Close()
	page, _ = io.ReadAll(resp.Body)
	return string(page)
}

// tcpListeners lists the listening TCP sockets (IPv4 and IPv6) that process pid holds.
func tcpListeners(t *testing.T, pid int) []string {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if ino, ok := strings.CutPrefix(target, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	if len(inodes) == 0 {
		t.Fatalf("process %d holds no sockets at all; wrong process?", pid)
	}
	var out []string
	for _, table := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// local_address rem_address st ... inode: st 0A is LISTEN.
			if len(f) > 9 && f[3] == "0A" && inodes[f[9]] {
				out = append(out, table+" "+f[1])
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestTrayHeadless runs the real weft-tray against a real weftd under a private D-Bus
// session, reads its StatusNotifierItem menu through com.canonical.dbusmenu, logs the
// device in through the browser flow, clicks Disconnect and Connect, and restarts weftd.
func TestTrayHeadless(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, "tray")
	bins := labrun.Build(t)
	bin := buildTray(t, bins)
	broker := labrun.StartBroker(t, bins, lab.AddHost("broker", lab.Internet()))
	key := broker.NewAccount("acme")
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("correct horse\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	broker.MustAdmin("user", "add", "acme", "ann@example.com", "--password-file", pw)
	desk := labrun.StartDevice(t, bins, lab.AddHost("desk", lab.Internet()), "desk")
	desk.Up(broker, key)
	laptop := labrun.StartDevice(t, bins, lab.AddHost("laptop", lab.Internet()), "laptop")

	// The local API answers only on its socket: weftd listens on no TCP port.
	if l := tcpListeners(t, laptop.Proc.Pid()); len(l) != 0 {
		t.Fatalf("weftd listens on TCP: %v", l)
	}

	tb := startTray(t, laptop.Host, bin, laptop.Socket)
	m := tb.waitMenu("not logged in", statusIs("weft: not logged in"))
	if it, ok := m.find("Log in…"); !ok || it.enabled() {
		t.Fatalf("without a known broker Log in… should show disabled:\n%s", render(m, ""))
	}
	tb.dump("not-logged-in", m)

	// weft up without credentials prints the login URL and waits; the tray offers the page.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	up := laptop.Host.Command(ctx, filepath.Join(bins.Dir, "weft"), "--socket", laptop.Socket,
		"up", "--broker", broker.URL(), "--ca", broker.CA(), "--name", "laptop")
	stdout, err := up.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var upErr strings.Builder
	up.Stderr = &upErr
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	first, err := out.ReadString('\n')
	loginURL, ok := strings.CutPrefix(strings.TrimSpace(first), "To log in, open: ")
	if err != nil || !ok || !strings.HasPrefix(loginURL, broker.URL()+wire.PathLoginPage) {
		t.Fatalf("weft up printed %q (%v); stderr %s", first, err, upErr.String())
	}
	m = tb.waitMenu("login pending", statusIs("weft: waiting for you to sign in"))
	if _, ok := m.find("Open login page…"); !ok {
		t.Fatalf("no Open login page… item:\n%s", render(m, ""))
	}
	tb.dump("login-pending", m)

	// A person signs in in a browser on the laptop; the waiting device is registered.
	hc := browser(t, laptop.Host, broker.CA())
	if page := signIn(t, hc, loginURL, "acme", "ann@example.com", "wrong horse"); !strings.Contains(page, "Wrong account, email or password") {
		t.Fatalf("wrong password page:\n%s", page)
	}
	if page := signIn(t, hc, loginURL, "acme", "ann@example.com", "correct horse"); !strings.Contains(page, "You are signed in") {
		t.Fatalf("sign-in page:\n%s", page)
	}
	rest, _ := io.ReadAll(out)
	if err := up.Wait(); err != nil {
		t.Fatalf("weft up: %v: %s%s", err, rest, upErr.String())
	}
	self := laptop.Self()
	if !strings.Contains(string(rest), "weft is up: laptop ("+self.Address.String()+")") {
		t.Fatalf("weft up printed:\n%s%s", first, rest)
	}
	// The used link is refused.
	if resp, err := hc.Get(loginURL); err != nil || resp.StatusCode != http.StatusGone {
		t.Fatalf("reopening the used login link: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	deskSelf := desk.Self()
	m = tb.waitMenu("connected with desk", func(m menuNode) error {
		if err := statusIs("weft: connected to acme")(m); err != nil {
			return err
		}
		if _, ok := m.find("desk — " + deskSelf.Address.String() + " — online"); !ok {
			return fmt.Errorf("desk not listed online:\n%s", render(m, ""))
		}
		return nil
	})
	for _, want := range []string{"Disconnect", "Log out", "This device: laptop (" + self.Address.String() + ")", "Devices (1 of 1 online)", "Quit weft tray"} {
		if it, ok := m.find(want); !ok || !it.enabled() {
			t.Errorf("connected menu lacks enabled %q:\n%s", want, render(m, ""))
		}
	}
	// No gateway is approved yet: the picker shows, disabled, saying so.
	gw, ok := m.find("Gateways")
	if !ok || gw.enabled() || len(gw.Children) != 1 || gw.Children[0].label() != "No gateways" {
		t.Errorf("gateways submenu:\n%s", render(m, ""))
	}
	if tip, _, err := tb.sniProps(); err != nil || !strings.HasPrefix(tip, "weft: connected to acme") {
		t.Errorf("StatusNotifierItem tooltip %q: %v", tip, err)
	}
	icons := map[string]string{"connected": tb.icon()}
	tb.dump("connected", m)

	// desk offers itself as an exit node; once approved it is a pick in the Gateways
	// submenu, and clicking it does what weft gateway use does. None goes back.
	desk.MustCLI("gateway", "advertise", "0.0.0.0/0")
	broker.MustAdmin("route", "approve", "acme", "desk", "0.0.0.0/0")
	pickDesk := "Use desk (" + deskSelf.Address.String() + ")"
	m = tb.waitMenu("desk offered as a gateway", func(m menuNode) error {
		if _, ok := m.find(pickDesk); !ok {
			return fmt.Errorf("no %q:\n%s", pickDesk, render(m, ""))
		}
		return nil
	})
	if none, ok := m.find("None (use the local network)"); !ok || !none.checked() {
		t.Errorf("None is not the checked pick:\n%s", render(m, ""))
	}
	tb.click(m, pickDesk)
	labrun.Eventually(t, 20*time.Second, "weft gateway list shows desk chosen", func() error {
		g, err := laptop.Gateways()
		if err != nil {
			return err
		}
		if len(g.Choices) != 1 || g.Choices[0].Gateway != deskSelf.ID || g.Choices[0].Route.String() != "0.0.0.0/0" || !g.Choices[0].Active {
			return fmt.Errorf("choices %+v", g.Choices)
		}
		return nil
	})
	if out, err := laptop.CLI("gateway", "list"); err != nil || !strings.Contains(out, "desk") || !regexp.MustCompile(`desk .* 0\.0\.0\.0/0 \(exit\)\s+yes\s+yes`).MatchString(out) {
		t.Errorf("weft gateway list after the click: %v\n%s", err, out)
	}
	m = tb.waitMenu("desk checked", func(m menuNode) error {
		if it, ok := m.find(pickDesk); !ok || !it.checked() {
			return fmt.Errorf("desk not checked:\n%s", render(m, ""))
		}
		return nil
	})
	tb.click(m, "None (use the local network)")
	labrun.Eventually(t, 20*time.Second, "the tray's None clears the choice", func() error {
		if g, err := laptop.Gateways(); err != nil || len(g.Choices) != 0 {
			return fmt.Errorf("choices %+v (%v)", g.Choices, err)
		}
		return nil
	})
	m = tb.waitMenu("None checked", func(m menuNode) error {
		if it, ok := m.find("None (use the local network)"); !ok || !it.checked() {
			return fmt.Errorf("None not checked:\n%s", render(m, ""))
		}
		return nil
	})

	// Clicking this device copies its address; a session without a display has no
	// clipboard, and the menu says so instead.
	tb.click(m, "This device: laptop")
	m = tb.waitMenu("copy outcome", func(m menuNode) error {
		if len(m.Children) > 1 {
			if l := m.Children[1].label(); m.Children[1].visible() && (l == "Copied "+self.Address.String() || strings.HasPrefix(l, "Couldn't copy: no clipboard")) {
				return nil
			}
		}
		return fmt.Errorf("no copy notice:\n%s", render(m, ""))
	})

	// Disconnect from the tray stops the tunnel.
	tb.click(m, "Disconnect")
	labrun.Eventually(t, 20*time.Second, "weftd stopped by the tray", func() error {
		if st := laptop.MustStatus(); st.State != wire.StateStopped {
			return fmt.Errorf("state %s", st.State)
		}
		return nil
	})
	m = tb.waitMenu("disconnected", statusIs("weft: disconnected"))
	if _, ok := m.find("Connect"); !ok {
		t.Fatalf("no Connect item after disconnecting:\n%s", render(m, ""))
	}
	icons["disconnected"] = tb.icon()
	tb.dump("disconnected", m)

	// weftd going away shows; the tray reconnects when it is back.
	laptop.Stop()
	m = tb.waitMenu("service not running", statusIs("weft service not running"))
	if _, ok := m.find("Disconnect"); ok {
		t.Fatalf("actions shown without weftd:\n%s", render(m, ""))
	}
	icons["service not running"] = tb.icon()
	tb.dump("service-not-running", m)
	// Each state has its own icon.
	if icons["connected"] == icons["disconnected"] || icons["disconnected"] == icons["service not running"] || icons["connected"] == icons["service not running"] {
		t.Errorf("icons do not tell the states apart: %v", icons)
	}
	laptop.Start()
	m = tb.waitMenu("back after restart", statusIs("weft: disconnected"))

	// Connect from the tray brings the tunnel back.
	tb.click(m, "Connect")
	labrun.Eventually(t, 20*time.Second, "weftd running again", func() error {
		if st := laptop.MustStatus(); st.State != wire.StateRunning {
			return fmt.Errorf("state %s", st.State)
		}
		return nil
	})
	tb.waitMenu("connected again", statusIs("weft: connected to acme"))
	labrun.Eventually(t, 20*time.Second, "laptop reaches desk", func() error { return laptop.Ping(deskSelf) })
}
