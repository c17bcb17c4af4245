package service

import (
	"net/http"

	"github.com/weftmesh/weft/wire"
)

// gatewayEndpoint returns the method and server of a gateway or virtual device path of the
// local API, or a nil server when path is none of them (or the backend offers none).
func (h *handler) gatewayEndpoint(path string) (string, func(http.ResponseWriter, *http.Request) (any, error)) {
	gb, ok := h.b.(GatewayBackend)
	if !ok {
		return "", nil
	}
	switch path {
	case wire.LocalPathGateways:
		return http.MethodGet, func(w http.ResponseWriter, r *http.Request) (any, error) {
			return gb.Gateways(r.Context())
		}
	case wire.LocalPathVDevs:
		return http.MethodGet, func(w http.ResponseWriter, r *http.Request) (any, error) {
			return gb.VirtualDevices(r.Context())
		}
	case wire.LocalPathGatewayAdvertise:
		return http.MethodPost, func(w http.ResponseWriter, r *http.Request) (any, error) {
			var req wire.RoutesRequest
			if err := decode(w, r, &req, false); err != nil {
				return nil, err
			}
			return gb.AdvertiseRoutes(r.Context(), req)
		}
	case wire.LocalPathGatewayUse:
		return http.MethodPost, func(w http.ResponseWriter, r *http.Request) (any, error) {
			var req wire.GatewayUseRequest
			if err := decode(w, r, &req, false); err != nil {
				return nil, err
			}
			return gb.UseGateway(r.Context(), req)
		}
	case wire.LocalPathGatewayClear:
		return http.MethodPost, func(w http.ResponseWriter, r *http.Request) (any, error) {
			var req wire.GatewayClearRequest
			if err := decode(w, r, &req, true); err != nil {
				return nil, err
			}
			return gb.ClearGateway(r.Context(), req)
		}
	case wire.LocalPathVDevAdd:
		return http.MethodPost, func(w http.ResponseWriter, r *http.Request) (any, error) {
			var req wire.VDevRequest
			if err := decode(w, r, &req, false); err != nil {
				return nil, err
			}
			return gb.AddVirtualDevice(r.Context(), req)
		}
	case wire.LocalPathVDevRemove:
		return http.MethodPost, func(w http.ResponseWriter, r *http.Request) (any, error) {
			var req wire.VDevRemoveRequest
			if err := decode(w, r, &req, false); err != nil {
				return nil, err
			}
			return gb.RemoveVirtualDevice(r.Context(), req)
		}
	}
	return "", nil
}
