package service

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/weftmesh/weft/wire"
)

// recordingBackend records what reached it.
type recordingBackend struct {
	calls []string
	up    wire.UpRequest
	ping  wire.PingRequest
	err   error
}

func (b *recordingBackend) Status(context.Context) wire.Status {
	b.calls = append(b.calls, "status")
	return wire.Status{State: wire.StateRunning}
}

func (b *recordingBackend) Up(_ context.Context, req wire.UpRequest) (wire.Status, error) {
	b.calls = append(b.calls, "up")
	b.up = req
	return wire.Status{State: wire.StateStarting}, b.err
}

func (b *recordingBackend) Down(context.Context) (wire.Status, error) {
	b.calls = append(b.calls, "down")
	return wire.Status{State: wire.StateStopped}, b.err
}

func (b *recordingBackend) Logout(context.Context) (wire.Status, error) {
	b.calls = append(b.calls, "logout")
	return wire.Status{State: wire.StateNeedsLogin}, b.err
}

func (b *recordingBackend) Ping(_ context.Context, req wire.PingRequest) (wire.PingResult, error) {
	b.calls = append(b.calls, "ping")
	b.ping = req
	return wire.PingResult{Peer: req.Peer}, b.err
}

func do(h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	return rec
}

func TestHandlerRefusesBadRequests(t *testing.T) {
	big := `{"peer":"` + strings.Repeat("x", wire.MaxRequestBody) + `"}`
	cases := []struct {
		name, method, path, body string
		code                     int
	}{
		{"malformed JSON", "POST", wire.LocalPathUp, `{"broker": `, 400},
		{"wrong type", "POST", wire.LocalPathPing, `{"peer": 5}`, 400},
		{"unknown field", "POST", wire.LocalPathUp, `{"broker":"https://b","admin":true}`, 400},
		{"two objects", "POST", wire.LocalPathPing, `{"peer":"a"}{"peer":"b"}`, 400},
		{"empty body where one is needed", "POST", wire.LocalPathPing, ``, 400},
		{"fields on down", "POST", wire.LocalPathDown, `{"force":true}`, 400},
		{"oversized", "POST", wire.LocalPathPing, big, 413},
		{"wrong method on status", "POST", wire.LocalPathStatus, ``, 405},
		{"wrong method on up", "GET", wire.LocalPathUp, ``, 405},
		{"unknown path", "GET", "/local/v1/nope", ``, 404},
	}
	for _, c := range cases {
		b := &recordingBackend{}
		rec := do(NewHandler(b, slog.New(slog.NewTextHandler(t.Output(), nil))), c.method, c.path, c.body)
		if rec.Code != c.code {
			t.Errorf("%s: status %d, want %d (%s)", c.name, rec.Code, c.code, rec.Body)
		}
		var e wire.Error
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" || strings.Contains(e.Error, "\n") {
			t.Errorf("%s: body %q is not a one-line JSON error", c.name, rec.Body)
		}
		if len(b.calls) != 0 {
			t.Errorf("%s: backend was called: %v", c.name, b.calls)
		}
	}
}

func TestHandlerServes(t *testing.T) {
	b := &recordingBackend{}
	h := NewHandler(b, nil)
	rec := do(h, "GET", wire.LocalPathStatus, "")
	var st wire.Status
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &st) != nil || st.State != wire.StateRunning {
		t.Fatalf("status: %d %s", rec.Code, rec.Body)
	}
	rec = do(h, "POST", wire.LocalPathUp, `{"broker":"https://b.test","auth_key":"k"}`)
	if rec.Code != 200 || b.up.Broker != "https://b.test" || b.up.AuthKey != "k" {
		t.Fatalf("up: %d %s, backend got %+v", rec.Code, rec.Body, b.up)
	}
	for _, body := range []string{"", "{}"} {
		if rec := do(h, "POST", wire.LocalPathDown, body); rec.Code != 200 {
			t.Fatalf("down with body %q: %d %s", body, rec.Code, rec.Body)
		}
	}
	if rec := do(h, "POST", wire.LocalPathPing, `{"peer":"desk","count":2}`); rec.Code != 200 || b.ping.Count != 2 {
		t.Fatalf("ping: %d %s", rec.Code, rec.Body)
	}

	b.err = errorf(http.StatusConflict, "not logged in")
	rec = do(h, "POST", wire.LocalPathLogout, "")
	var e wire.Error
	if rec.Code != 409 || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error != "not logged in" {
		t.Fatalf("backend error: %d %s", rec.Code, rec.Body)
	}
}

func TestCheckUpRequest(t *testing.T) {
	bad := []wire.UpRequest{
		{Broker: "http://broker.test"},
		{Broker: "https://broker.test/path"},
		{Name: "Not_A_Label"},
		{CAPEM: "not pem"},
		{AuthKey: "k", Email: "a@b", Account: "acme", Password: "p"},
		{Email: "a@b", Password: "p"},
		{Account: "acme", Email: "a@b"},
	}
	for _, req := range bad {
		if _, err := checkUpRequest(req); err == nil {
			t.Errorf("accepted %+v", req)
		}
	}
	got, err := checkUpRequest(wire.UpRequest{Broker: " https://broker.test:8443/ ", AuthKey: " k ", Name: "laptop"})
	if err != nil || got.Broker != "https://broker.test:8443" || got.AuthKey != "k" {
		t.Fatalf("good request: %+v, %v", got, err)
	}
}
