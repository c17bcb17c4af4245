// Package control is weftd's broker client: registration, challenge–response device auth
// and the map stream, with reconnection.
package control

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/devauth"
	"github.com/weftmesh/weft/wire"
)

const (
	// requestTimeout bounds one non-streaming exchange with the broker.
	requestTimeout = 30 * time.Second
	// maxResponse bounds a non-streaming answer from the broker.
	maxResponse = 1 << 20
)

// Config says which broker to talk to and as whom.
type Config struct {
	BrokerURL string // https://host[:port]
	// CAPEM is the PEM of the CA that signed the broker's certificate; it is then the
	// only CA trusted. Empty means the system's roots.
	CAPEM      string
	PrivateKey wire.Key
	Logger     *slog.Logger
	// StreamTimeout is how long a silent map stream is kept before reconnecting;
	// 0 means three broker keepalives (3 × wire.MapKeepalive).
	StreamTimeout time.Duration
}

// Client talks to one broker as one device. It is safe for concurrent use.
type Client struct {
	base          string // scheme://host, no trailing slash
	priv, pub     wire.Key
	hc            *http.Client
	log           *slog.Logger
	streamTimeout time.Duration
	// reconnect asks the open map stream to end now, so the next one is dialled afresh
	// (see Reconnect); buffered, so a request made between streams is kept.
	reconnect chan struct{}

	mu sync.Mutex // guards shared
	// shared is the devauth MAC key for this device and the broker, derived once the
	// broker's public key is known.
	shared *[32]byte
}

// APIError is a non-2xx answer from the broker.
type APIError struct {
	Path    string
	Status  int
	Message string // the broker's one-line error
}

func (e *APIError) Error() string {
	return fmt.Sprintf("broker refused %s (%d): %s", e.Path, e.Status, e.Message)
}

// RevokedError means the broker removed this device; it will not accept its key again.
type RevokedError struct {
	Reason string
}

func (e *RevokedError) Error() string { return "the broker removed this device: " + e.Reason }

// New checks cfg and returns a client. It does not contact the broker.
func New(cfg Config) (*Client, error) {
	base, err := ParseBrokerURL(cfg.BrokerURL)
	if err != nil {
		return nil, err
	}
	if cfg.PrivateKey.IsZero() {
		return nil, errors.New("control: no private key")
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if strings.TrimSpace(cfg.CAPEM) != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(cfg.CAPEM)) {
			return nil, errors.New("the broker CA holds no PEM certificate")
		}
		tlsConf.RootCAs = pool
	}
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: requestTimeout,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	st := cfg.StreamTimeout
	if st <= 0 {
		st = 3 * wire.MapKeepalive
	}
	return &Client{
		reconnect:     make(chan struct{}, 1),
		base:          base,
		priv:          cfg.PrivateKey,
		pub:           cfg.PrivateKey.Public(),
		hc:            &http.Client{Transport: tr},
		log:           log,
		streamTimeout: st,
	}, nil
}

// ParseBrokerURL checks that s is an https URL of a broker (no path, query or user
// info) and returns it as scheme://host[:port].
func ParseBrokerURL(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return "", fmt.Errorf("broker URL %q: %w", s, err)
	}
	switch {
	case u.Scheme != "https":
		return "", fmt.Errorf("broker URL %q must start with https://", s)
	case u.Host == "":
		return "", fmt.Errorf("broker URL %q has no host", s)
	case u.User != nil, u.RawQuery != "", u.Fragment != "", u.Path != "" && u.Path != "/":
		return "", fmt.Errorf("broker URL %q must be just https://host[:port]", s)
	}
	return "https://" + u.Host, nil
}

// Reconnect drops the open map stream and idle connections and dials the broker again at
// once: after this device's network changed, the old TCP connection may be dead without
// either end knowing, and would otherwise hang until the stream timeout.
func (c *Client) Reconnect() {
	c.hc.CloseIdleConnections()
	select {
	case c.reconnect <- struct{}{}:
	default:
	}
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Info fetches the broker's version, public key and domain.
func (c *Client) Info(ctx context.Context) (wire.BrokerInfo, error) {
	var info wire.BrokerInfo
	err := c.call(ctx, http.MethodGet, wire.PathInfo, nil, &info)
	return info, err
}

// Register adds this device to an account (or re-registers it) and returns its record.
// Version and PublicKey are filled in from the client.
func (c *Client) Register(ctx context.Context, req wire.RegisterRequest) (wire.Device, error) {
	req.Version = wire.ProtocolVersion
	req.PublicKey = c.pub
	var resp wire.RegisterResponse
	if err := c.call(ctx, http.MethodPost, wire.PathRegister, req, &resp); err != nil {
		return wire.Device{}, err
	}
	return resp.Device, nil
}

// UpdateEndpoints replaces the device's reported endpoint candidates: its LAN endpoints,
// and, when known, its public (reflexive) mappings and NAT behaviour.
func (c *Client) UpdateEndpoints(ctx context.Context, req wire.EndpointsRequest) error {
	if req.Endpoints == nil {
		req.Endpoints = []netip.AddrPort{}
	}
	return c.authedCall(ctx, wire.PathEndpoints, req)
}

// Punch asks the broker to have this device and peer start probing each other at once.
func (c *Client) Punch(ctx context.Context, peerID string) error {
	return c.authedCall(ctx, wire.PathPunch, wire.PunchRequest{PeerID: peerID})
}

// Logout removes this device from its account.
func (c *Client) Logout(ctx context.Context) error {
	return c.authedCall(ctx, wire.PathLogout, nil)
}

// call makes an unauthenticated JSON exchange.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s request: %w", path, err)
		}
		body = b
	}
	resp, err := c.send(ctx, method, path, body, "")
	if err != nil {
		return err
	}
	return readJSON(resp, out)
}

// authedCall makes an authenticated POST and expects an empty 2xx answer.
func (c *Client) authedCall(ctx context.Context, path string, in any) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s request: %w", path, err)
		}
		body = b
	}
	resp, err := c.authed(ctx, http.MethodPost, path, body)
	if err != nil {
		return err
	}
	return readJSON(resp, nil)
}

// authed sends a request carrying a devauth proof over a fresh nonce. A non-2xx answer
// is returned as an error (a *RevokedError when it says the device is gone).
func (c *Client) authed(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	shared, err := c.sharedKey(ctx)
	if err != nil {
		return nil, err
	}
	var ch wire.ChallengeResponse
	if err := c.call(ctx, http.MethodPost, wire.PathChallenge, wire.ChallengeRequest{PublicKey: c.pub}, &ch); err != nil {
		var apiErr *APIError
		// The broker answers 401 to a challenge only for a key it does not know: this
		// device was removed (or its key replaced by a re-registration).
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized {
			return nil, &RevokedError{Reason: apiErr.Message}
		}
		return nil, err
	}
	h := devauth.Header{Key: c.pub, Nonce: ch.Nonce, MAC: devauth.MAC(shared, method, path, ch.Nonce, body)}
	resp, err := c.send(ctx, method, path, body, h.Format())
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		err := readJSON(resp, nil)
		var apiErr *APIError
		if errors.As(err, &apiErr) && saysRemoved(apiErr) {
			return nil, &RevokedError{Reason: apiErr.Message}
		}
		return nil, err
	}
	return resp, nil
}

// saysRemoved reports whether a refused authenticated request means the device is gone
// rather than a stale nonce or a passing fault.
func saysRemoved(e *APIError) bool {
	if e.Status != http.StatusUnauthorized {
		return false
	}
	m := strings.ToLower(e.Message)
	for _, w := range []string{"removed", "revoked", "unknown device", "not registered"} {
		if strings.Contains(m, w) {
			return true
		}
	}
	return false
}

func (c *Client) sharedKey(ctx context.Context) ([32]byte, error) {
	c.mu.Lock()
	s := c.shared
	c.mu.Unlock()
	if s != nil {
		return *s, nil
	}
	info, err := c.Info(ctx)
	if err != nil {
		return [32]byte{}, err
	}
	if info.PublicKey.IsZero() {
		return [32]byte{}, errors.New("broker info has no public key")
	}
	k, err := devauth.SharedKey(c.priv, info.PublicKey)
	if err != nil {
		return [32]byte{}, err
	}
	c.mu.Lock()
	c.shared = &k
	c.mu.Unlock()
	return k, nil
}

func (c *Client) send(ctx context.Context, method, path string, body []byte, auth string) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return nil, fmt.Errorf("build %s request: %w", path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set(wire.AuthHeader, auth)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach broker %s: %w", c.base, err)
	}
	return resp, nil
}

// readJSON consumes resp: a non-2xx answer becomes an *APIError, a 2xx one is decoded
// into out (or discarded when out is nil).
func readJSON(resp *http.Response, out any) error {
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("read broker answer to %s: %w", resp.Request.URL.Path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e wire.Error
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = resp.Status
		}
		return &APIError{Path: resp.Request.URL.Path, Status: resp.StatusCode, Message: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode broker answer to %s: %w", resp.Request.URL.Path, err)
	}
	return nil
}
