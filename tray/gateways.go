package tray

import (
	"context"
	"errors"
	"net/http"
	"net/netip"

	"github.com/weftmesh/weft/ipc"
	"github.com/weftmesh/weft/wire"
)

// exitRoute is the route the picker chooses a gateway for: the internet.
var exitRoute = netip.MustParsePrefix("0.0.0.0/0")

// LocalGatewayAPI is what LocalGateways needs of weftd; *ipc.Client implements it.
type LocalGatewayAPI interface {
	Gateways(ctx context.Context) (wire.Gateways, error)
	UseGateway(ctx context.Context, req wire.GatewayUseRequest) (wire.Gateways, error)
	ClearGateway(ctx context.Context, req wire.GatewayClearRequest) (wire.Gateways, error)
}

// LocalGateways is the GatewayAPI over weftd's local API. The picker is about the
// internet: it lists the peers with an approved exit route (0.0.0.0/0), and picking one
// is `weft gateway use DEVICE --route 0.0.0.0/0`; None is `weft gateway clear --route
// 0.0.0.0/0`. Routes to other networks are left as the CLI set them.
type LocalGateways struct {
	Local LocalGatewayAPI
}

// Gateways lists the exit nodes and the one in use.
func (l LocalGateways) Gateways(ctx context.Context) (Gateways, error) {
	g, err := l.Local.Gateways(ctx)
	if err != nil {
		return Gateways{}, err
	}
	return exitNodes(g), nil
}

// UseGateway sends internet traffic through the gateway with device ID id, or through
// none for "".
func (l LocalGateways) UseGateway(ctx context.Context, id string) error {
	if id != "" {
		_, err := l.Local.UseGateway(ctx, wire.GatewayUseRequest{Gateway: id, Route: exitRoute})
		return err
	}
	_, err := l.Local.ClearGateway(ctx, wire.GatewayClearRequest{Route: exitRoute})
	var apiErr *ipc.APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
		return nil // none was in use: None is what the user has
	}
	return err
}

// exitNodes picks the picker's view out of weftd's gateway list.
func exitNodes(g wire.Gateways) Gateways {
	var out Gateways
	for _, gw := range g.Gateways {
		for _, r := range gw.Routes {
			if r == exitRoute {
				out.List = append(out.List, Gateway{ID: gw.ID, Name: gw.Name, Address: gw.Address})
				break
			}
		}
	}
	for _, c := range g.Choices {
		if c.Route != exitRoute {
			continue
		}
		for _, gw := range out.List {
			if gw.ID == c.Gateway {
				out.Using = c.Gateway
			}
		}
	}
	return out
}
