package service

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/weftmesh/weft/internal/dnsname"
	"github.com/weftmesh/weft/mesh"
	"github.com/weftmesh/weft/mesh/control"
	"github.com/weftmesh/weft/wire"
)

const credentialsHint = "give --auth-key KEY, or --account, --email and a password"

// checkUpRequest trims and validates an UpRequest without looking at any state.
func checkUpRequest(req wire.UpRequest) (wire.UpRequest, error) {
	req.Broker = strings.TrimSpace(req.Broker)
	req.Name = strings.TrimSpace(req.Name)
	req.AuthKey = strings.TrimSpace(req.AuthKey)
	req.Account = strings.TrimSpace(req.Account)
	req.Email = strings.TrimSpace(req.Email)
	if req.Broker != "" {
		b, err := control.ParseBrokerURL(req.Broker)
		if err != nil {
			return req, &Error{Code: http.StatusBadRequest, Err: err}
		}
		req.Broker = b
	}
	if req.CAPEM != "" && !x509.NewCertPool().AppendCertsFromPEM([]byte(req.CAPEM)) {
		return req, errorf(http.StatusBadRequest, "the CA file holds no PEM certificate")
	}
	if req.Name != "" {
		if err := dnsname.ValidLabel(req.Name); err != nil {
			return req, &Error{Code: http.StatusBadRequest, Err: err}
		}
	}
	password := req.Account != "" || req.Email != "" || req.Password != ""
	switch {
	case req.AuthKey != "" && password:
		return req, errorf(http.StatusBadRequest, "give either an auth key or account, email and password, not both")
	case password && (req.Account == "" || req.Email == "" || req.Password == ""):
		return req, errorf(http.StatusBadRequest, "logging in with a password needs --account, --email and the password")
	}
	return req, nil
}

// Up registers the device when it is not registered yet or when the request changes the
// broker or the name, then brings the tunnel up. A failed registration changes nothing.
func (d *Daemon) Up(ctx context.Context, req wire.UpRequest) (wire.Status, error) {
	req, err := checkUpRequest(req)
	if err != nil {
		return wire.Status{}, err
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.mu.Lock()
	st, key, running := d.st, d.key, d.engine != nil
	d.mu.Unlock()

	hasCreds := req.AuthKey != "" || req.Email != ""
	broker := st.Broker
	if req.Broker != "" {
		broker = req.Broker
	}
	brokerChanged := broker != st.Broker
	ca := st.CAPEM
	if brokerChanged {
		ca = "" // a new broker does not inherit the old one's CA
	}
	if req.CAPEM != "" {
		ca = req.CAPEM
	}
	renamed := req.Name != "" && st.Device != nil && req.Name != st.Device.Name
	register := !st.LoggedIn || brokerChanged || renamed || hasCreds

	if register && !hasCreds {
		switch {
		case !st.LoggedIn && broker != "":
			// No credentials: someone signs in in the browser instead (login.go).
			name, err := deviceName(req.Name, st, brokerChanged)
			if err != nil {
				return wire.Status{}, err
			}
			return d.beginLogin(ctx, broker, ca, name)
		case !st.LoggedIn:
			return wire.Status{}, errorf(http.StatusBadRequest, "not logged in: give --broker URL (and sign in in the browser), or with it an auth key (--auth-key KEY) or --account, --email and a password")
		case brokerChanged:
			return wire.Status{}, errorf(http.StatusBadRequest, "changing the broker needs credentials: %s", credentialsHint)
		default:
			return wire.Status{}, errorf(http.StatusBadRequest, "renaming the device needs credentials: %s", credentialsHint)
		}
	}
	if broker == "" {
		return wire.Status{}, errorf(http.StatusBadRequest, "no broker: give --broker https://HOST[:PORT]")
	}

	if !register {
		if running && ca == st.CAPEM && st.WantedUp {
			return d.Status(ctx), nil
		}
		d.stopLocked()
		defer d.changed()
		if err := d.commit(func(s *State, _ *PeerMap) { s.WantedUp, s.CAPEM = true, ca }); err != nil {
			return wire.Status{}, err
		}
		if err := d.startLocked(); err != nil {
			return wire.Status{}, err
		}
		return d.Status(ctx), nil
	}

	name, err := deviceName(req.Name, st, brokerChanged)
	if err != nil {
		return wire.Status{}, err
	}
	dev, err := d.register(ctx, broker, ca, key, name, req)
	if err != nil {
		return wire.Status{}, err
	}
	if err := d.adoptLocked(broker, ca, dev); err != nil {
		return wire.Status{}, err
	}
	return d.Status(ctx), nil
}

// deviceName is the name to register under: the one asked for, else the current one
// (on the same broker), else the host name.
func deviceName(asked string, st State, brokerChanged bool) (string, error) {
	if asked != "" {
		return asked, nil
	}
	if st.Device != nil && !brokerChanged {
		return st.Device.Name, nil
	}
	return hostLabel()
}

// adoptLocked makes dev, just registered with broker, this device's identity and brings
// the tunnel up; a browser login still waiting is moot then. The caller holds opMu.
func (d *Daemon) adoptLocked(broker, ca string, dev wire.Device) error {
	d.stopLocked()
	if err := d.commit(func(s *State, pm *PeerMap) {
		same := s.Device != nil && s.Device.ID == dev.ID && s.Broker == broker
		var keep []gatewayChoice
		if same {
			// The same device logging in again keeps the gateways its user chose
			// (gateway IDs mean something only within that account on that broker).
			keep = s.GatewayRoutes
		}
		*s = State{Broker: broker, CAPEM: ca, Device: &dev, LoggedIn: true, WantedUp: true, GatewayRoutes: keep}
		if !same {
			*pm = PeerMap{}
		}
	}); err != nil {
		return fmt.Errorf("registered as %s but could not save it: %w", dev.Name, err)
	}
	d.log.Info("registered", "broker", broker, "name", dev.Name, "address", dev.Address)
	d.cancelLogin()
	defer d.changed()
	return d.startLocked()
}

// checkRegistered rejects a device record this device cannot run with.
func checkRegistered(dev wire.Device, key wire.Key) error {
	switch {
	case !dev.Address.Is4() || !meshRange.Contains(dev.Address):
		return errorf(http.StatusBadGateway, "the broker gave this device no usable mesh address (%v)", dev.Address)
	case dev.PublicKey != key.Public():
		return errorf(http.StatusBadGateway, "the broker registered a different key than this device's")
	}
	return nil
}

// register asks the broker for a device record. The caller holds opMu.
func (d *Daemon) register(ctx context.Context, broker, ca string, key wire.Key, name string, req wire.UpRequest) (wire.Device, error) {
	client, err := control.New(control.Config{BrokerURL: broker, CAPEM: ca, PrivateKey: key, Logger: d.log})
	if err != nil {
		return wire.Device{}, &Error{Code: http.StatusBadRequest, Err: err}
	}
	defer client.Close()
	port := d.cfg.ListenPort
	d.mu.Lock()
	if d.engine != nil {
		port = d.engine.ListenPort()
	}
	d.mu.Unlock()
	dev, err := client.Register(ctx, wire.RegisterRequest{
		Name:       name,
		ListenPort: port,
		Endpoints:  mesh.LocalEndpoints(port, meshRange),
		AuthKey:    req.AuthKey,
		Account:    req.Account,
		Email:      req.Email,
		Password:   req.Password,
	})
	var apiErr *control.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.Status < 500:
		return wire.Device{}, errorf(http.StatusBadRequest, "the broker refused registration: %s", apiErr.Message)
	case err != nil:
		return wire.Device{}, errorf(http.StatusBadGateway, "register with %s: %v", broker, err)
	}
	return dev, checkRegistered(dev, key)
}

// hostLabel is the host name as a device name.
func hostLabel() (string, error) {
	h, err := os.Hostname()
	if err != nil {
		return "", errorf(http.StatusBadRequest, "no device name: give --name (host name unreadable: %v)", err)
	}
	name := dnsname.Normalize(h)
	if name == "" {
		return "", errorf(http.StatusBadRequest, "no device name: give --name (host name %q has no usable characters)", h)
	}
	return name, nil
}

// Down takes the tunnel down and remembers that across restarts.
func (d *Daemon) Down(ctx context.Context) (wire.Status, error) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	if err := d.needLoggedIn(); err != nil {
		return wire.Status{}, err
	}
	d.stopLocked()
	defer d.changed()
	if err := d.commit(func(s *State, _ *PeerMap) { s.WantedUp = false }); err != nil {
		return wire.Status{}, err
	}
	return d.Status(ctx), nil
}

func (d *Daemon) needLoggedIn() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.st.LoggedIn:
		return nil
	case d.st.Revoked != "":
		return errorf(http.StatusConflict, "this device was removed from the mesh (%s)", d.st.Revoked)
	}
	return errorf(http.StatusConflict, "not logged in")
}

// Logout removes the device at the broker, then forgets the identity (key and state)
// and makes a new key. If the broker cannot be reached nothing changes: the device would
// otherwise stay in the account with no one able to remove it but an admin. A browser
// login still waiting is cancelled.
func (d *Daemon) Logout(ctx context.Context) (wire.Status, error) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	cancelled := d.cancelLogin()
	d.mu.Lock()
	st, key, running := d.st, d.key, d.engine != nil
	d.mu.Unlock()
	if !st.LoggedIn && st.Revoked == "" {
		if cancelled {
			return d.Status(ctx), nil
		}
		return wire.Status{}, errorf(http.StatusConflict, "not logged in")
	}
	defer d.changed()
	if st.LoggedIn {
		client, err := control.New(control.Config{BrokerURL: st.Broker, CAPEM: st.CAPEM, PrivateKey: key, Logger: d.log})
		if err != nil {
			return wire.Status{}, err
		}
		defer client.Close()
		// Stop the control loop first, so the broker ending our own stream is not taken
		// for a removal by someone else.
		d.stopLocked()
		err = client.Logout(ctx)
		var rev *control.RevokedError
		if err != nil && !errors.As(err, &rev) {
			if running {
				if err := d.startLocked(); err != nil {
					d.log.Error("restart tunnel after failed logout", "err", err)
				}
			}
			return wire.Status{}, errorf(http.StatusBadGateway, "could not log out at %s, still logged in: %v", st.Broker, err)
		}
	}
	d.stopLocked() // a revoked device may still hold its ended session
	newKey, err := wire.NewPrivateKey()
	if err != nil {
		return wire.Status{}, err
	}
	d.saveMu.Lock()
	d.mu.Lock()
	err = d.store.Clear()
	if err == nil {
		err = d.store.SaveKey(newKey)
	}
	d.st, d.peers, d.key, d.tunnelErr = State{}, PeerMap{}, newKey, ""
	d.mu.Unlock()
	d.saveMu.Unlock()
	if err != nil {
		return wire.Status{}, fmt.Errorf("logged out, but forgetting the identity failed: %w", err)
	}
	d.log.Info("logged out", "broker", st.Broker)
	return d.Status(ctx), nil
}
