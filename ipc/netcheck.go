package ipc

import (
	"context"
	"net/http"

	"github.com/weftmesh/weft/wire"
)

// Netcheck has weftd check the network it is on: UDP, public mappings, NAT behaviour,
// LAN addresses and relay latencies. It takes a few seconds.
func (c *Client) Netcheck(ctx context.Context) (wire.Netcheck, error) {
	var n wire.Netcheck
	err := c.do(ctx, http.MethodGet, wire.LocalPathNetcheck, nil, &n)
	return n, err
}
