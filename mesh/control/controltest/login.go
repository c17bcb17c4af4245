package controltest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/weftmesh/weft/wire"
)

// loginWait is how long the fake broker holds a login wait open.
const loginWait = time.Second

// fakeLogin is one browser login on the fake broker; guarded by Broker.mu.
type fakeLogin struct {
	token   string
	url     string
	req     wire.LoginStartRequest
	device  *wire.Device
	failure string
	ended   chan struct{}
}

// EnableLogin makes the fake broker offer browser login. Without it, the login endpoints
// answer 404 as a broker that predates them would. Call it once.
func (b *Broker) EnableLogin() {
	b.mux.HandleFunc("POST "+wire.PathLoginStart, b.loginStart)
	b.mux.HandleFunc("POST "+wire.PathLoginWait, b.loginWait)
}

// Logins returns the URLs of the logins started so far, oldest first.
func (b *Broker) Logins() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	urls := make([]string, len(b.logins))
	for i, l := range b.logins {
		urls[i] = l.url
	}
	return urls
}

// CompleteLogin acts as the person signing in at url: the login's device is registered.
func (b *Broker) CompleteLogin(url string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.loginByURL(url)
	if l == nil {
		return fmt.Errorf("no pending login at %s", url)
	}
	d, ok := b.devices[l.req.PublicKey]
	if !ok {
		n := len(b.devices) + 1
		d = wire.Device{ID: "dev" + strconv.Itoa(n), Account: "acme", PublicKey: l.req.PublicKey,
			Address: netip.AddrFrom4([4]byte{100, 64, 0, byte(n)})}
	}
	d.Name, d.FQDN, d.Endpoints = l.req.Name, l.req.Name+".acme.mesh.test", l.req.Endpoints
	b.devices[l.req.PublicKey] = d
	l.device = &d
	close(l.ended)
	return nil
}

// FailLogin ends the login at url with reason, as when it expires.
func (b *Broker) FailLogin(url, reason string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.loginByURL(url)
	if l == nil {
		return fmt.Errorf("no pending login at %s", url)
	}
	l.failure = reason
	close(l.ended)
	return nil
}

func (b *Broker) loginByURL(url string) *fakeLogin {
	for _, l := range b.logins {
		if l.url == url && l.device == nil && l.failure == "" {
			return l
		}
	}
	return nil
}

func (b *Broker) loginStart(w http.ResponseWriter, r *http.Request) {
	var req wire.LoginStartRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.PublicKey.IsZero() || req.Name == "" {
		Fail(w, http.StatusBadRequest, "malformed login request")
		return
	}
	tok := make([]byte, 16)
	rand.Read(tok)
	token := base64.RawURLEncoding.EncodeToString(tok)
	b.mu.Lock()
	l := &fakeLogin{token: token, url: b.URL + wire.PathLoginPage + strconv.Itoa(len(b.logins)+1), req: req, ended: make(chan struct{})}
	b.logins = append(b.logins, l)
	b.mu.Unlock()
	json.NewEncoder(w).Encode(wire.LoginStartResponse{LoginURL: l.url, Token: token, Expires: time.Now().Add(wire.LoginTTL)})
}

func (b *Broker) loginWait(w http.ResponseWriter, r *http.Request) {
	var req wire.LoginWaitRequest
	json.NewDecoder(r.Body).Decode(&req)
	b.mu.Lock()
	var l *fakeLogin
	for _, x := range b.logins {
		if x.token == req.Token {
			l = x
		}
	}
	b.mu.Unlock()
	if l == nil {
		Fail(w, http.StatusNotFound, "no such login")
		return
	}
	select {
	case <-l.ended:
	case <-time.After(loginWait):
	case <-r.Context().Done():
		return
	}
	b.mu.Lock()
	dev, failure := l.device, l.failure
	b.mu.Unlock()
	if failure != "" {
		Fail(w, http.StatusGone, failure)
		return
	}
	json.NewEncoder(w).Encode(wire.LoginWaitResponse{Device: dev})
}
