package service

import (
	"context"
	"net/http"

	"github.com/weftmesh/weft/wire"
)

// BrokerSource is a Backend that can say which broker the device belongs to; the local
// API serves it on wire.LocalPathBroker when the Backend has it.
type BrokerSource interface {
	// Broker returns the broker URL and CA of the logged-in device, or an *Error with
	// 404 when the device is not logged in.
	Broker(ctx context.Context) (wire.LocalBroker, error)
}

// Broker returns the broker this device is registered with and the CA weftd trusts for
// it, so local clients (weft-tray) can reach the broker's account API as weftd does.
func (d *Daemon) Broker(context.Context) (wire.LocalBroker, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.st.LoggedIn || d.st.Broker == "" {
		return wire.LocalBroker{}, errorf(http.StatusNotFound, "this device is not logged in to a broker")
	}
	return wire.LocalBroker{URL: d.st.Broker, CAPEM: d.st.CAPEM}, nil
}
