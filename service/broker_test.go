package service

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/weftmesh/weft/ipc"
	"github.com/weftmesh/weft/mesh/control/controltest"
	"github.com/weftmesh/weft/wire"
)

func TestLocalBroker(t *testing.T) {
	b := controltest.NewBroker(t)
	h := startDaemon(t, t.TempDir())
	ctx := context.Background()
	var apiErr *ipc.APIError
	if _, err := h.client.Broker(ctx); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Fatalf("broker before login: %v, want 404", err)
	}
	if _, err := h.client.Up(ctx, wire.UpRequest{Broker: b.URL, CAPEM: b.CAPEM, AuthKey: controltest.GoodAuthKey}); err != nil {
		t.Fatal(err)
	}
	got, err := h.client.Broker(ctx)
	if err != nil || got.URL != b.URL || got.CAPEM != b.CAPEM {
		t.Fatalf("broker %+v, %v; want %s and its CA", got, err, b.URL)
	}
	if _, err := h.client.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.Broker(ctx); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Fatalf("broker after logout: %v, want 404", err)
	}
}

func TestLocalBrokerNeedsABrokerSource(t *testing.T) {
	// A Backend without BrokerSource does not offer the endpoint; one with it serves it
	// read-only.
	if rec := do(NewHandler(&recordingBackend{}, nil), http.MethodGet, wire.LocalPathBroker, ""); rec.Code != http.StatusNotFound {
		t.Fatalf("without a BrokerSource: %d %s", rec.Code, rec.Body)
	}
	h := NewHandler(&brokerBackend{}, nil)
	if rec := do(h, http.MethodGet, wire.LocalPathBroker, ""); rec.Code != http.StatusOK || rec.Body.String() != `{"url":"https://b.test"}`+"\n" {
		t.Fatalf("GET: %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, http.MethodPost, wire.LocalPathBroker, "{}"); rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d %s", rec.Code, rec.Body)
	}
}

type brokerBackend struct{ recordingBackend }

func (*brokerBackend) Broker(context.Context) (wire.LocalBroker, error) {
	return wire.LocalBroker{URL: "https://b.test"}, nil
}
