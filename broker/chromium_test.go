package broker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/weftmesh/weft/wire"
)

// chromium is a headless Chromium driven over the Chrome DevTools protocol (one page).
type chromium struct {
	t    *testing.T
	ws   *websocket.Conn
	mu   sync.Mutex
	next int
	// replies gets each command's answer by id; events are dropped.
	replies map[int]chan cdpMessage
}

type cdpMessage struct {
	ID     int             `json:"id"`
	Method string          `json:"method"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// findChromium returns the browser to drive, or skips the test when there is none and the
// test cannot expect one (CI runs as root and installs it with ./build.sh deps).
func findChromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("headless Chromium is slow; skipped with -short")
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("no chromium on PATH: install it (./build.sh deps as root, Debian package chromium) to test the login page in a browser")
	}
	t.Fatal("no chromium on PATH: ./build.sh deps installs it (Debian package chromium)")
	return ""
}

// startChromium runs headless Chromium trusting only the certificate with spki (the
// broker's own), and attaches to its page.
func startChromium(t *testing.T, spki string) *chromium {
	t.Helper()
	bin := findChromium(t)
	profile := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+profile, "--remote-debugging-port=0",
		"--remote-allow-origins=http://localhost", "--ignore-certificate-errors-spki-list="+spki, "about:blank")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	// Chromium writes its debugging port and browser path here once it listens.
	var port string
	deadline := time.Now().Add(30 * time.Second)
	for port == "" {
		b, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort"))
		if err == nil {
			if line, _, _ := strings.Cut(string(b), "\n"); line != "" {
				port = line
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromium did not start its DevTools server: %s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Get("http://127.0.0.1:" + port + "/json/list")
	if err != nil {
		t.Fatalf("list chromium targets: %v", err)
	}
	var targets []struct {
		Type  string `json:"type"`
		WSURL string `json:"webSocketDebuggerUrl"`
	}
	err = json.NewDecoder(resp.Body).Decode(&targets)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	wsURL := ""
	for _, tg := range targets {
		if tg.Type == "page" {
			wsURL = tg.WSURL
		}
	}
	if wsURL == "" {
		t.Fatalf("chromium has no page target: %+v", targets)
	}
	ws, err := websocket.Dial(wsURL, "", "http://localhost")
	if err != nil {
		t.Fatalf("attach to chromium: %v", err)
	}
	ws.MaxPayloadBytes = 16 << 20
	c := &chromium{t: t, ws: ws, replies: map[int]chan cdpMessage{}}
	t.Cleanup(func() { ws.Close() })
	go c.read()
	return c
}

func (c *chromium) read() {
	for {
		var m cdpMessage
		if err := websocket.JSON.Receive(c.ws, &m); err != nil {
			c.mu.Lock()
			for id, ch := range c.replies {
				close(ch)
				delete(c.replies, id)
			}
			c.mu.Unlock()
			return
		}
		if m.ID == 0 {
			continue // an event
		}
		c.mu.Lock()
		ch := c.replies[m.ID]
		delete(c.replies, m.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
}

// call sends one DevTools command and decodes its result into out (if not nil).
func (c *chromium) call(method string, params, out any) {
	c.t.Helper()
	if msg := c.try(method, params, out); msg != "" {
		c.t.Fatalf("%s: %s", method, msg)
	}
}

// try is call that returns DevTools' own error message instead of failing the test.
func (c *chromium) try(method string, params, out any) string {
	c.t.Helper()
	c.mu.Lock()
	c.next++
	id := c.next
	ch := make(chan cdpMessage, 1)
	c.replies[id] = ch
	c.mu.Unlock()
	if err := websocket.JSON.Send(c.ws, map[string]any{"id": id, "method": method, "params": params}); err != nil {
		c.t.Fatalf("%s: %v", method, err)
	}
	select {
	case m, ok := <-ch:
		switch {
		case !ok:
			c.t.Fatalf("%s: chromium went away", method)
		case m.Error != nil:
			return m.Error.Message
		case out != nil:
			if err := json.Unmarshal(m.Result, out); err != nil {
				c.t.Fatalf("%s: decode %s: %v", method, m.Result, err)
			}
		}
	case <-time.After(30 * time.Second):
		c.t.Fatalf("%s: no answer from chromium", method)
	}
	return ""
}

// eval runs JavaScript in the page and returns its (JSON-able) value.
func (c *chromium) eval(expr string) any {
	c.t.Helper()
	var res struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	c.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &res)
	if res.Exception != nil {
		c.t.Fatalf("evaluate %q: %s", expr, res.Exception.Text)
	}
	return res.Result.Value
}

// waitPage waits until a new document (one without the marker an earlier call set) has
// loaded, and returns its text.
func (c *chromium) waitPage(what string) string {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		// While the old document is being replaced DevTools may answer "Inspected target
		// navigated or closed": that is the navigation under way, so ask again.
		var res struct {
			Result struct {
				Value any `json:"value"`
			} `json:"result"`
		}
		msg := c.try("Runtime.evaluate", map[string]any{"returnByValue": true,
			"expression": `document.readyState === "complete" && !window.__seen ? (window.__seen = true, document.body.innerText) : ""`}, &res)
		if s, _ := res.Result.Value.(string); msg == "" && s != "" {
			return s
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: page did not load", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *chromium) navigate(url string) string {
	c.t.Helper()
	c.eval(`window.__seen = true`)
	c.call("Page.navigate", map[string]any{"url": url}, nil)
	return c.waitPage("navigate to " + url)
}

// typeInto focuses the field with id, clears it, and types text as keyboard input.
func (c *chromium) typeInto(id, text string) {
	c.t.Helper()
	c.eval(fmt.Sprintf(`(e => { e.focus(); e.select(); })(document.getElementById(%q))`, id))
	c.call("Input.insertText", map[string]any{"text": text}, nil)
}

// submit clicks the sign-in button and returns the text of the page that answers.
func (c *chromium) submit() string {
	c.t.Helper()
	c.eval(`window.__seen = true; document.getElementById("submit").click()`)
	return c.waitPage("submit")
}

// spkiOf is the base64 SHA-256 of the public key in a PEM certificate, as Chromium's
// --ignore-certificate-errors-spki-list takes it.
func spkiOf(t *testing.T, certFile string) string {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("no PEM in %s", certFile)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// TestLoginPageInChromium drives a real sign-in in headless Chromium: the page is usable
// with labels, a wrong password shows the error on the page, the right one registers the
// waiting device, and the used URL is refused afterwards.
func TestLoginPageInChromium(t *testing.T) {
	tb := startBroker(t, nil)
	br := startChromium(t, spkiOf(t, filepath.Join(tb.dir, serverFile)))
	tb.setupAccount(t, "acme")
	if err := tb.store.AddUser(t.Context(), "acme", "ann@example.com", "correct horse"); err != nil {
		t.Fatal(err)
	}
	k, _ := wire.NewPrivateKey()
	status, body := tb.do(t, http.MethodPost, wire.PathLoginStart, mustJSON(t, wire.LoginStartRequest{
		Version: wire.ProtocolVersion, PublicKey: k.Public(), Name: "laptop", ListenPort: 51820}), nil)
	var start wire.LoginStartResponse
	if status != http.StatusOK || json.Unmarshal(body, &start) != nil {
		t.Fatalf("login start: %d %s", status, body)
	}

	text := br.navigate(start.LoginURL)
	if !strings.Contains(text, "Sign in to weft") || !strings.Contains(text, "laptop") {
		t.Fatalf("login page reads:\n%s", text)
	}
	// Every visible field has exactly one label, and the page declares its language.
	if ok := br.eval(`document.documentElement.lang === "en" && [...document.querySelectorAll("input:not([type=hidden])")].every(i => i.labels.length === 1 && i.labels[0].textContent.trim() !== "")`); ok != true {
		t.Fatal("a form field has no label, or the page has no language")
	}

	br.typeInto("account", "acme")
	br.typeInto("email", "ann@example.com")
	br.typeInto("password", "wrong horse")
	text = br.submit()
	if !strings.Contains(text, "Wrong account, email or password") {
		t.Fatalf("after a wrong password the page reads:\n%s", text)
	}
	if role := br.eval(`document.getElementById("error").getAttribute("role")`); role != "alert" {
		t.Fatalf("the error is not announced (role %v)", role)
	}
	if kept := br.eval(`document.getElementById("email").value + " " + document.getElementById("password").value`); kept != "ann@example.com " {
		t.Fatalf("after an error the form keeps %q; want the email but not the password", kept)
	}
	if n := tb.deviceCount(t, "acme"); n != 0 {
		t.Fatalf("%d devices after a wrong password", n)
	}

	br.typeInto("password", "correct horse")
	text = br.submit()
	if !strings.Contains(text, "You are signed in") {
		t.Fatalf("after signing in the page reads:\n%s", text)
	}
	status, body = tb.do(t, http.MethodPost, wire.PathLoginWait, mustJSON(t, wire.LoginWaitRequest{Token: start.Token}), nil)
	var done wire.LoginWaitResponse
	if status != http.StatusOK || json.Unmarshal(body, &done) != nil || done.Device == nil || done.Device.PublicKey != k.Public() {
		t.Fatalf("wait after sign-in: %d %s", status, body)
	}
	if !strings.Contains(text, done.Device.Address.String()) {
		t.Fatalf("the page does not show the device's address %s:\n%s", done.Device.Address, text)
	}

	// The link worked once.
	text = br.navigate(start.LoginURL)
	if !strings.Contains(text, "already used") {
		t.Fatalf("the used link reads:\n%s", text)
	}
	if n := tb.deviceCount(t, "acme"); n != 1 {
		t.Fatalf("%d devices, want 1", n)
	}
	t.Logf("chromium signed in; device %s at %s", done.Device.Name, done.Device.Address)
}
