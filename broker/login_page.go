package broker

import (
	"bytes"
	"errors"
	"html/template"
	"net/http"
	"strings"

	"github.com/weftmesh/weft/broker/store"
	"github.com/weftmesh/weft/wire"
)

const (
	// sessionCookie holds the random value the page's CSRF token is bound to.
	sessionCookie = "weft_login"
	// maxFormBody bounds a sign-in form post.
	maxFormBody = 8 << 10
	// pageCSP allows the page nothing but its own inline style and posting to itself.
	pageCSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

// page is what the login template shows: the form when Form is set, else a message.
type page struct {
	Title   string
	Heading string
	Message string // a paragraph under the heading
	Error   string // shown above the form, announced to screen readers
	Success bool

	Form    bool
	Action  string
	Device  string
	Session bool // the form signs in for an account session, not to add Device
	CSRF    string
	Account string
	Email   string
	Focus   string // id of the field to focus
}

var loginTemplate = template.Must(template.New("login").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{.Title}} – weft</title>
<style>
body{font:1rem/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f4f5f7;color:#1b1d21}
main{max-width:26rem;margin:3rem auto;padding:2rem;background:#fff;border-radius:.5rem;box-shadow:0 1px 3px rgba(0,0,0,.2)}
h1{font-size:1.5rem;margin:0 0 1rem}
label{display:block;font-weight:600;margin:1rem 0 .25rem}
input{box-sizing:border-box;width:100%;padding:.6rem;font:inherit;border:1px solid #6b7280;border-radius:.25rem}
input:focus,button:focus{outline:3px solid #1d4ed8;outline-offset:2px}
input[aria-invalid=true]{border-color:#b91c1c}
button{margin-top:1.5rem;width:100%;padding:.7rem;font:inherit;font-weight:600;color:#fff;background:#1d4ed8;border:0;border-radius:.25rem;cursor:pointer}
.error{color:#991b1b;background:#fef2f2;border:1px solid #b91c1c;border-radius:.25rem;padding:.6rem}
.success{color:#14532d;background:#f0fdf4;border:1px solid #15803d;border-radius:.25rem;padding:.6rem}
.hint{color:#4b5563;font-size:.9rem}
</style>
</head>
<body>
<main>
<h1>{{.Heading}}</h1>
{{if .Error}}<p id="error" class="error" role="alert">{{.Error}}</p>{{end}}
{{if .Message}}<p id="message"{{if .Success}} class="success" role="status"{{end}}>{{.Message}}</p>{{end}}
{{if .Form}}
{{if .Session}}<p>Sign in to log the weft tray app in to your account, so it can list the account's devices (and remove them, if you are an administrator).</p>
<p class="hint">Only sign in if you chose “Log in to your account…” in the weft tray yourself just now.</p>
{{else}}<p>Sign in to add the device <strong id="device">{{.Device}}</strong> to your mesh.</p>
<p class="hint">Only sign in if you started this login on that device yourself.</p>{{end}}
<form method="post" action="{{.Action}}" novalidate>
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="account">Account</label>
<input id="account" name="account" type="text" autocomplete="organization" autocapitalize="none" spellcheck="false" required value="{{.Account}}"{{if .Error}} aria-describedby="error" aria-invalid="true"{{end}}{{if eq .Focus "account"}} autofocus{{end}}>
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username email" autocapitalize="none" spellcheck="false" required value="{{.Email}}"{{if .Error}} aria-describedby="error" aria-invalid="true"{{end}}{{if eq .Focus "email"}} autofocus{{end}}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required{{if .Error}} aria-describedby="error" aria-invalid="true"{{end}}{{if eq .Focus "password"}} autofocus{{end}}>
<button id="submit" type="submit">Sign in</button>
</form>
{{end}}
</main>
</body>
</html>
`))

// renderPage writes p as a complete HTML page with the headers that keep it private.
func renderPage(w http.ResponseWriter, status int, p page) {
	var buf bytes.Buffer
	if err := loginTemplate.Execute(&buf, p); err != nil {
		http.Error(w, "internal error rendering the login page", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func messagePage(w http.ResponseWriter, status int, heading, msg string) {
	renderPage(w, status, page{Title: heading, Heading: heading, Message: msg})
}

// endedPage explains why a login URL no longer works.
func endedPage(w http.ResponseWriter, l *login) {
	if l.session != nil {
		sessionEndedPage(w, l)
		return
	}
	switch l.state {
	case loginDone:
		messagePage(w, http.StatusGone, "Link already used",
			"Someone already signed in with this login link, and a login link works only once. To add a device, start a new login on it (weft up).")
	default:
		messagePage(w, http.StatusGone, "Login link no longer valid",
			"This login link has ended: "+l.failure+". Start a new login on the device (weft up).")
	}
}

// handlePage serves the one-time login page: GET shows the form, POST signs in.
func (f *loginFlow) handlePage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		messagePage(w, http.StatusMethodNotAllowed, "Not allowed", "This page only shows and takes the sign-in form.")
		return
	}
	l := f.lookup(r.PathValue("id"))
	if l == nil {
		messagePage(w, http.StatusNotFound, "Login link not valid",
			"This login link does not exist: it expired, or the broker restarted. Start a new login: weft up on the device, or Log in… in the weft tray.")
		return
	}
	f.mu.Lock()
	state := l.state
	f.mu.Unlock()
	if state != loginPending {
		endedPage(w, l)
		return
	}
	action := wire.PathLoginPage + l.id
	if r.Method == http.MethodGet {
		session := ""
		if c, err := r.Cookie(sessionCookie); err == nil && len(c.Value) >= 22 {
			session = c.Value
		} else {
			session = randomString(32)
			http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: session, Path: wire.PathLoginPage,
				MaxAge: int(wire.LoginTTL.Seconds()), Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		}
		renderPage(w, http.StatusOK, page{Title: "Sign in", Heading: "Sign in to weft", Form: true, Action: action,
			Device: l.spec.Name, Session: l.session != nil, CSRF: f.csrfToken(l.id, session), Focus: "account"})
		return
	}
	f.signIn(w, r, l, action)
}

// signIn checks a posted sign-in form and, with the right password, registers the device.
func (f *loginFlow) signIn(w http.ResponseWriter, r *http.Request, l *login, action string) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		messagePage(w, http.StatusBadRequest, "Form not understood", "The sign-in form could not be read. Go back, reload the page and try again.")
		return
	}
	session := ""
	if c, err := r.Cookie(sessionCookie); err == nil {
		session = c.Value
	}
	if !f.csrfValid(l.id, session, r.PostFormValue("csrf")) {
		messagePage(w, http.StatusForbidden, "Session expired",
			"This form no longer matches your browser session (cookies must be on for this site). Reload the login link and sign in again.")
		return
	}
	form := page{Title: "Sign in", Heading: "Sign in to weft", Form: true, Action: action, Device: l.spec.Name,
		Session: l.session != nil, CSRF: r.PostFormValue("csrf"), Account: strings.TrimSpace(r.PostFormValue("account")),
		Email: strings.TrimSpace(r.PostFormValue("email"))}
	password := r.PostFormValue("password")
	retry := func(status int, msg, focus string) {
		form.Title, form.Error, form.Focus = "Error: sign in", msg, focus
		renderPage(w, status, form)
	}
	switch {
	case form.Account == "":
		retry(http.StatusBadRequest, "Enter your account name.", "account")
		return
	case form.Email == "":
		retry(http.StatusBadRequest, "Enter your email address.", "email")
		return
	case password == "":
		retry(http.StatusBadRequest, "Enter your password.", "password")
		return
	}
	if !f.allowIP(w, r, "signin") {
		retry(http.StatusTooManyRequests, "Too many sign-in attempts from your address. Wait a minute, then try again.", "password")
		return
	}
	if ok, wait := f.b.limiter.Allow(form.Account + "\x00" + strings.ToLower(form.Email)); !ok {
		w.Header().Set("Retry-After", retryAfter(wait))
		retry(http.StatusTooManyRequests, "Too many sign-in attempts for this account and email. Wait "+retryAfter(wait)+" seconds, then try again.", "password")
		return
	}
	switch err := f.begin(l); {
	case errors.Is(err, errLoginBusy):
		retry(http.StatusConflict, "A sign-in with this link is already being checked. Wait a moment and reload the page.", "password")
		return
	case err != nil:
		endedPage(w, l)
		return
	}
	acct, err := f.b.store.CheckPassword(r.Context(), form.Account, form.Email, password)
	switch {
	case errors.Is(err, store.ErrBadCredentials):
		if f.wrongPassword(l) {
			endedPage(w, l)
			return
		}
		retry(http.StatusUnauthorized, "Wrong account, email or password. Check them and try again.", "password")
		return
	case err != nil:
		f.release(l)
		f.b.log.Error("browser login: check password", "err", err)
		retry(http.StatusInternalServerError, "The broker could not check your password right now. Try again shortly.", "password")
		return
	}
	if l.session != nil {
		f.completeSession(w, l, acct, form.Email)
		return
	}
	dev, err := f.complete(r, l, acct.ID, form.Email)
	if err != nil {
		status, msg := f.b.statusOf(err)
		if status == http.StatusInternalServerError {
			status = http.StatusBadGateway
		}
		messagePage(w, status, "Device not added", "You signed in, but the broker could not add the device: "+msg+". Start a new login on the device.")
		return
	}
	renderPage(w, http.StatusOK, page{Title: "Signed in", Heading: "You are signed in", Success: true,
		Message: "The device " + dev.Name + " is now on your mesh as " + dev.Address.String() + " (" + dev.FQDN + "). You can close this page."})
}
