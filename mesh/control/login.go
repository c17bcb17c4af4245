package control

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/weftmesh/weft/wire"
)

// ErrNoBrowserLogin means the broker does not offer browser login (it predates it).
var ErrNoBrowserLogin = errors.New("this broker does not offer browser login: use an auth key or --account and --email")

// LoginStart asks the broker for a browser login for this device: a one-time URL for a
// person to sign in at, and the token LoginWait polls with. The URL must be on this
// client's broker.
func (c *Client) LoginStart(ctx context.Context, name string, listenPort int, eps []netip.AddrPort) (wire.LoginStartResponse, error) {
	var resp wire.LoginStartResponse
	err := c.call(ctx, http.MethodPost, wire.PathLoginStart, wire.LoginStartRequest{
		Version: wire.ProtocolVersion, PublicKey: c.pub, Name: name, ListenPort: listenPort, Endpoints: eps,
	}, &resp)
	var apiErr *APIError
	if errors.As(err, &apiErr) && (apiErr.Status == http.StatusNotFound || apiErr.Status == http.StatusMethodNotAllowed) {
		return resp, ErrNoBrowserLogin
	}
	if err != nil {
		return resp, err
	}
	u, err := url.Parse(resp.LoginURL)
	if err != nil || u.Scheme+"://"+u.Host != c.base || !strings.HasPrefix(u.Path, wire.PathLoginPage) || resp.Token == "" {
		return resp, fmt.Errorf("the broker answered a login URL %q that is not on %s", resp.LoginURL, c.base)
	}
	return resp, nil
}

// LoginWait waits (up to the broker's long-poll time) for the login with token to
// complete. It returns the registered device, or nil if the login is still pending; an
// ended login (expired, failed, unknown) is an *APIError with the broker's reason.
func (c *Client) LoginWait(ctx context.Context, token string) (*wire.Device, error) {
	var resp wire.LoginWaitResponse
	if err := c.call(ctx, http.MethodPost, wire.PathLoginWait, wire.LoginWaitRequest{Token: token}, &resp); err != nil {
		return nil, err
	}
	return resp.Device, nil
}
