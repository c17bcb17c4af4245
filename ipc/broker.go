package ipc

import (
	"context"
	"net/http"

	"github.com/weftmesh/weft/wire"
)

// Broker returns the broker the logged-in device belongs to and the PEM of its CA. A
// device that is not logged in gets an *APIError with status 404.
func (c *Client) Broker(ctx context.Context) (wire.LocalBroker, error) {
	var b wire.LocalBroker
	err := c.do(ctx, http.MethodGet, wire.LocalPathBroker, nil, &b)
	return b, err
}
