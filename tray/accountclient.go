package tray

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/wire"
)

const (
	// accountTimeout bounds one account API call.
	accountTimeout = 30 * time.Second
	// maxAccountAnswer bounds what the client reads from the broker.
	maxAccountAnswer = 4 << 20
)

// AccountClient is the AccountAPI over HTTPS, at the broker weftd's device belongs to and
// trusting the CA weftd trusts for it. The tray never reads weftd's state: it asks weftd.
type AccountClient struct {
	// Broker says where the device's broker is; (*ipc.Client).Broker in weft-tray.
	Broker func(ctx context.Context) (wire.LocalBroker, error)

	mu      sync.Mutex       // guards the fields below
	madeFor wire.LocalBroker // what hc was made for
	hc      *http.Client     // reused while the broker stays the same, for its connections
}

// BrokerError is a refusal from the broker: its status and its one-line message.
type BrokerError struct {
	Status  int
	Message string
	kind    error // ErrSessionEnded or ErrLoginEnded where the refusal means that; else nil
}

func (e *BrokerError) Error() string        { return e.Message }
func (e *BrokerError) Is(target error) bool { return e.kind != nil && target == e.kind }

// client returns the broker's URL and an HTTP client trusting its CA.
func (c *AccountClient) client(ctx context.Context) (string, *http.Client, error) {
	b, err := c.Broker(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("ask weftd for its broker: %w", err)
	}
	if !strings.HasPrefix(b.URL, "https://") {
		return "", nil, fmt.Errorf("weftd's broker %q is not an https address", b.URL)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hc != nil && c.madeFor == b {
		return b.URL, c.hc, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if b.CAPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(b.CAPEM)) {
			return "", nil, errors.New("weftd's broker CA holds no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	if c.hc != nil {
		c.hc.CloseIdleConnections()
	}
	c.madeFor, c.hc = b, &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true,
		TLSHandshakeTimeout: 10 * time.Second, IdleConnTimeout: time.Minute}}
	return b.URL, c.hc, nil
}

// call sends one request: in (if not nil) as the JSON body, token (if not "") as the
// bearer; the answer goes into out (if not nil).
func (c *AccountClient) call(ctx context.Context, method, path, token string, in, out any) error {
	base, hc, err := c.client(ctx)
	if err != nil {
		return err
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("reach the broker: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAccountAnswer))
	if err != nil {
		return fmt.Errorf("read the broker's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e wire.Error
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = "the broker answered " + resp.Status
		}
		return &BrokerError{Status: resp.StatusCode, Message: e.Error}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode the broker's answer: %w", err)
	}
	return nil
}

// bearer is call with a session token: a 401 means the session ended.
func (c *AccountClient) bearer(ctx context.Context, method, path, token string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, accountTimeout)
	defer cancel()
	err := c.call(ctx, method, path, token, in, out)
	var be *BrokerError
	if errors.As(err, &be) && be.Status == http.StatusUnauthorized {
		be.kind = ErrSessionEnded
	}
	return err
}

// StartSession begins a browser login for an account session.
func (c *AccountClient) StartSession(ctx context.Context) (wire.LoginStartResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, accountTimeout)
	defer cancel()
	var res wire.LoginStartResponse
	if err := c.call(ctx, http.MethodPost, wire.PathSessionStart, "", struct{}{}, &res); err != nil {
		return res, err
	}
	if !strings.HasPrefix(res.LoginURL, "https://") || res.Token == "" {
		return wire.LoginStartResponse{}, fmt.Errorf("the broker answered an unusable login (url %q)", res.LoginURL)
	}
	return res, nil
}

// WaitSession waits for the login with poll token poll, as long as the broker holds it.
func (c *AccountClient) WaitSession(ctx context.Context, poll string) (wire.SessionWaitResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, wire.LoginWaitTimeout+accountTimeout)
	defer cancel()
	var res wire.SessionWaitResponse
	err := c.call(ctx, http.MethodPost, wire.PathSessionWait, "", wire.LoginWaitRequest{Token: poll}, &res)
	var be *BrokerError
	if errors.As(err, &be) && (be.Status == http.StatusGone || be.Status == http.StatusNotFound) {
		be.kind = ErrLoginEnded
	}
	return res, err
}

// Me describes the session.
func (c *AccountClient) Me(ctx context.Context, token string) (wire.AccountMe, error) {
	var me wire.AccountMe
	err := c.bearer(ctx, http.MethodGet, wire.PathAccountMe, token, nil, &me)
	return me, err
}

// Devices lists the account's devices.
func (c *AccountClient) Devices(ctx context.Context, token string) ([]wire.Device, error) {
	var out wire.AccountDevices
	err := c.bearer(ctx, http.MethodGet, wire.PathAccountDevices, token, nil, &out)
	return out.Devices, err
}

// RemoveDevice removes a device of the account, by ID or name; administrators only.
func (c *AccountClient) RemoveDevice(ctx context.Context, token, device string) error {
	return c.bearer(ctx, http.MethodPost, wire.PathAccountRemove, token, wire.AccountRemoveRequest{Device: device}, nil)
}

// EndSession logs the session out.
func (c *AccountClient) EndSession(ctx context.Context, token string) error {
	return c.bearer(ctx, http.MethodPost, wire.PathSessionLogout, token, nil, nil)
}
