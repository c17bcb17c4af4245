package service

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/weftmesh/weft/mesh"
	"github.com/weftmesh/weft/mesh/control"
	"github.com/weftmesh/weft/wire"
)

const (
	// loginSlack is added to wire.LoginTTL before weftd gives up on a login by its own
	// clock, for a broker that cannot be reached to say it expired.
	loginSlack = 30 * time.Second
	// loginRetryMin and loginRetryMax bound the wait between failed polls of the broker.
	loginRetryMin = time.Second
	loginRetryMax = 30 * time.Second
)

// loginState is the daemon's browser login; it is guarded by Daemon.mu. The zero value
// means no login.
type loginState struct {
	cur    *browserLogin // waiting for a person to sign in; nil when none
	err    string        // why the last login ended without registering the device
	closed bool          // the daemon is shutting down: no new logins
}

// browserLogin is one login waiting on the broker.
type browserLogin struct {
	broker, ca, name string
	url, token       string
	ctx              context.Context // ends when the login is over, replaced or cancelled
	cancel           context.CancelFunc
}

// report adds the login to a status; the caller holds mu.
func (l *loginState) report(s *wire.Status) {
	if l.cur != nil {
		s.LoginURL = l.cur.url
	}
	s.LoginError = l.err
}

// beginLogin starts a browser login at broker for a device that has no credentials, or
// returns the one already waiting for the same broker and name. The device registers when
// a person signs in on the page at Status.LoginURL. The caller holds opMu.
func (d *Daemon) beginLogin(ctx context.Context, broker, ca, name string) (wire.Status, error) {
	d.mu.Lock()
	cur, closed, key := d.login.cur, d.login.closed, d.key
	port := d.cfg.ListenPort
	if d.engine != nil {
		port = d.engine.ListenPort()
	}
	d.mu.Unlock()
	switch {
	case closed:
		return wire.Status{}, errorf(http.StatusServiceUnavailable, "weftd is shutting down")
	case cur != nil && cur.ctx.Err() == nil && cur.broker == broker && cur.ca == ca && cur.name == name:
		return d.Status(ctx), nil
	}
	client, err := control.New(control.Config{BrokerURL: broker, CAPEM: ca, PrivateKey: key, Logger: d.log})
	if err != nil {
		return wire.Status{}, &Error{Code: http.StatusBadRequest, Err: err}
	}
	resp, err := client.LoginStart(ctx, name, port, mesh.LocalEndpoints(port, meshRange))
	var apiErr *control.APIError
	switch {
	case errors.Is(err, control.ErrNoBrowserLogin):
		client.Close()
		return wire.Status{}, errorf(http.StatusBadRequest, "not logged in, and %v", err)
	case errors.As(err, &apiErr) && apiErr.Status < 500:
		client.Close()
		return wire.Status{}, errorf(http.StatusBadRequest, "the broker refused to start a login: %s", apiErr.Message)
	case err != nil:
		client.Close()
		return wire.Status{}, errorf(http.StatusBadGateway, "start a login at %s: %v", broker, err)
	}
	lctx, cancel := context.WithTimeout(context.Background(), wire.LoginTTL+loginSlack)
	p := &browserLogin{broker: broker, ca: ca, name: name, url: resp.LoginURL, token: resp.Token, ctx: lctx, cancel: cancel}
	d.mu.Lock()
	if d.login.closed {
		d.mu.Unlock()
		cancel()
		client.Close()
		return wire.Status{}, errorf(http.StatusServiceUnavailable, "weftd is shutting down")
	}
	if d.login.cur != nil {
		d.login.cur.cancel()
	}
	d.login.cur, d.login.err = p, ""
	d.mu.Unlock()
	d.log.Info("browser login started; waiting for someone to sign in", "broker", broker, "name", name, "url", resp.LoginURL)
	go d.awaitLogin(p, client)
	d.changed()
	return d.Status(ctx), nil
}

// awaitLogin polls the broker until login p completes, fails or is cancelled.
func (d *Daemon) awaitLogin(p *browserLogin, client *control.Client) {
	defer client.Close()
	retry := loginRetryMin
	for {
		asked := time.Now()
		dev, err := client.LoginWait(p.ctx, p.token)
		var apiErr *control.APIError
		switch {
		case p.ctx.Err() != nil:
			if errors.Is(p.ctx.Err(), context.DeadlineExceeded) {
				d.endLogin(p, "the login link expired before anyone signed in")
			}
			return
		case err == nil && dev == nil && time.Since(asked) >= loginRetryMin:
			retry = loginRetryMin
			continue // the broker held the poll open: ask again at once
		case err == nil && dev == nil:
			// A broker that answers "pending" at once is asked again after a pause.
		case err == nil:
			d.finishLogin(p, *dev)
			return
		case errors.As(err, &apiErr) && apiErr.Status < 500:
			d.endLogin(p, apiErr.Message)
			return
		}
		if err != nil {
			d.log.Debug("wait for browser login", "err", err, "retry_in", retry)
		}
		select {
		case <-p.ctx.Done():
		case <-time.After(retry):
		}
		retry = min(2*retry, loginRetryMax)
	}
}

// endLogin records why login p ended, if it is still the current one.
func (d *Daemon) endLogin(p *browserLogin, why string) {
	d.mu.Lock()
	current := d.login.cur == p
	if current {
		d.login.cur, d.login.err = nil, why
	}
	d.mu.Unlock()
	p.cancel()
	if current {
		d.log.Warn("browser login ended without registering", "reason", why)
		d.changed()
	}
}

// finishLogin adopts the device the broker registered when someone signed in for p.
func (d *Daemon) finishLogin(p *browserLogin, dev wire.Device) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.mu.Lock()
	current := d.login.cur == p && p.ctx.Err() == nil
	key := d.key
	d.mu.Unlock()
	if !current {
		return // cancelled, replaced or shutting down meanwhile
	}
	if err := checkRegistered(dev, key); err != nil {
		d.endLogin(p, err.Error())
		return
	}
	if err := d.adoptLocked(p.broker, p.ca, dev); err != nil {
		d.endLogin(p, err.Error())
		return
	}
	d.log.Info("browser login completed", "name", dev.Name, "address", dev.Address)
}

// cancelLogin drops a waiting login (a registration made it moot, or the user logged
// out) and reports whether there was one.
func (d *Daemon) cancelLogin() bool {
	d.mu.Lock()
	p := d.login.cur
	d.login.cur, d.login.err = nil, ""
	d.mu.Unlock()
	if p == nil {
		return false
	}
	p.cancel()
	d.changed()
	return true
}

// closeLocal ends event streams and any waiting login: the daemon is shutting down.
func (d *Daemon) closeLocal() {
	d.mu.Lock()
	d.login.closed = true
	p := d.login.cur
	d.mu.Unlock()
	if p != nil {
		p.cancel()
	}
	d.events.stop()
}
