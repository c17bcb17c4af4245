package ipc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strings"

	"github.com/weftmesh/weft/wire"
)

// maxResponse bounds what the client reads from weftd.
const maxResponse = 16 << 20

// Client talks to weftd's local API. The zero value uses DefaultSocketPath.
type Client struct {
	Path string // socket (or named pipe) path; "" means DefaultSocketPath()
}

// ErrNotRunning is wrapped by the error of a call that found no weftd on the socket.
var ErrNotRunning = errors.New("weftd is not running")

// ErrDenied is wrapped by the error of a call the socket refused to open.
var ErrDenied = errors.New("permission denied")

// connError is a failure to reach weftd; Is reports its kind.
type connError struct {
	msg  string
	kind error // ErrNotRunning, ErrDenied or nil
}

func (e *connError) Error() string        { return e.msg }
func (e *connError) Is(target error) bool { return e.kind != nil && target == e.kind }

// APIError is a non-2xx answer from weftd; its Error is the daemon's message.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// Status returns weftd's state and its peers.
func (c *Client) Status(ctx context.Context) (wire.Status, error) {
	var st wire.Status
	err := c.do(ctx, http.MethodGet, wire.LocalPathStatus, nil, &st)
	return st, err
}

// Up registers the device if needed and brings the tunnel up.
func (c *Client) Up(ctx context.Context, req wire.UpRequest) (wire.Status, error) {
	var st wire.Status
	err := c.do(ctx, http.MethodPost, wire.LocalPathUp, req, &st)
	return st, err
}

// Down takes the tunnel down and keeps it down across restarts.
func (c *Client) Down(ctx context.Context) (wire.Status, error) {
	var st wire.Status
	err := c.do(ctx, http.MethodPost, wire.LocalPathDown, nil, &st)
	return st, err
}

// Logout removes the device from the broker and forgets its identity.
func (c *Client) Logout(ctx context.Context) (wire.Status, error) {
	var st wire.Status
	err := c.do(ctx, http.MethodPost, wire.LocalPathLogout, nil, &st)
	return st, err
}

// Ping has weftd ping a peer through the tunnel.
func (c *Client) Ping(ctx context.Context, req wire.PingRequest) (wire.PingResult, error) {
	var res wire.PingResult
	err := c.do(ctx, http.MethodPost, wire.LocalPathPing, req, &res)
	return res, err
}

func (c *Client) path() string {
	if c.Path == "" {
		return DefaultSocketPath()
	}
	return c.Path
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	// The host part is ignored: the transport always dials the socket.
	req, err := http.NewRequestWithContext(ctx, method, "http://weftd"+path, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.send(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("read weftd's answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return apiError(resp, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode weftd's answer: %w", err)
	}
	return nil
}

// send makes one request to weftd over the socket, turning failures to reach it into
// clear errors (wrapping ErrNotRunning or ErrDenied where they apply).
func (c *Client) send(ctx context.Context, req *http.Request) (*http.Response, error) {
	sock := c.path()
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dial(ctx, sock)
		},
		DisableKeepAlives: true,
	}}
	resp, err := hc.Do(req)
	if err == nil {
		return resp, nil
	}
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("talk to weftd: %w", ctx.Err())
	case notRunning(err):
		return nil, &connError{msg: fmt.Sprintf("weftd is not running (no socket at %s)", sock), kind: ErrNotRunning}
	case errors.Is(err, fs.ErrPermission):
		return nil, &connError{msg: fmt.Sprintf("permission denied opening %s: weftd's socket is for root and members of group %s", sock, GroupName), kind: ErrDenied}
	}
	return nil, fmt.Errorf("talk to weftd at %s: %w", sock, err)
}

// apiError turns a non-2xx answer into an *APIError with weftd's message.
func apiError(resp *http.Response, data []byte) error {
	var e wire.Error
	if json.Unmarshal(data, &e) != nil || e.Error == "" {
		e.Error = fmt.Sprintf("weftd answered %s", resp.Status)
		if s := strings.TrimSpace(string(data)); s != "" && len(s) < 200 {
			e.Error += ": " + s
		}
	}
	return &APIError{Status: resp.StatusCode, Message: e.Error}
}
