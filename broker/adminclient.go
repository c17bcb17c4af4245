package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/weftmesh/weft/wire"
)

// AdminClient talks to a running broker over its admin socket.
type AdminClient struct {
	path string
	hc   *http.Client
}

// ErrNotRunning means no broker serves the data directory's admin socket.
var ErrNotRunning = errors.New("broker not running")

// NewAdminClient returns a client for the broker serving dataDir.
func NewAdminClient(dataDir string) (*AdminClient, error) {
	path := filepath.Join(dataDir, AdminSocket)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: no admin socket at %s", ErrNotRunning, path)
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	return &AdminClient{path: path, hc: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "unix", path)
			},
		},
	}}, nil
}

// do sends one request; in (if not nil) is the JSON body, out (if not nil) receives the reply.
func (c *AdminClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://broker"+path, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			return fmt.Errorf("%w: nothing answers on %s", ErrNotRunning, c.path)
		}
		return fmt.Errorf("admin request: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("read admin reply: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e wire.Error
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("admin request failed: %s", resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode admin reply: %w", err)
		}
	}
	return nil
}

// CreateAccount creates an account.
func (c *AdminClient) CreateAccount(ctx context.Context, name string) (AdminAccount, error) {
	var a AdminAccount
	err := c.do(ctx, http.MethodPost, AdminPathAccounts, AdminAccountRequest{Name: name}, &a)
	return a, err
}

// AddUser adds a password user to an account.
func (c *AdminClient) AddUser(ctx context.Context, req AdminUserRequest) error {
	return c.do(ctx, http.MethodPost, AdminPathUsers, req, nil)
}

// CreateAuthKey creates an auth key and returns it.
func (c *AdminClient) CreateAuthKey(ctx context.Context, req AdminAuthKeyRequest) (string, error) {
	var k AdminAuthKey
	err := c.do(ctx, http.MethodPost, AdminPathAuthKeys, req, &k)
	return k.Key, err
}

// Devices lists an account's devices.
func (c *AdminClient) Devices(ctx context.Context, account string) ([]AdminDevice, error) {
	var out []AdminDevice
	err := c.do(ctx, http.MethodGet, AdminPathDevices+"?account="+url.QueryEscape(account), nil, &out)
	return out, err
}

// RemoveDevice removes a device, by name or ID, ending its connection at once.
func (c *AdminClient) RemoveDevice(ctx context.Context, account, device string) (AdminDevice, error) {
	var d AdminDevice
	err := c.do(ctx, http.MethodPost, AdminPathRemoveDevice, AdminRemoveRequest{Account: account, Device: device}, &d)
	return d, err
}
