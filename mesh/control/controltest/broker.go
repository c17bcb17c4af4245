// Package controltest is a fake broker for tests of broker clients: it speaks just enough
// of the protocol (info, register, challenge, device auth, map stream, endpoints, logout)
// over real TLS, and the gateway calls (routes, virtual devices).
package controltest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/devauth"
	"github.com/weftmesh/weft/wire"
)

// GoodAuthKey is the only auth key the fake broker accepts.
const GoodAuthKey = "good-auth-key"

// Broker is a fake broker on an httptest TLS server.
type Broker struct {
	URL   string // https://127.0.0.1:PORT
	CAPEM string // PEM of the certificate to trust
	priv  wire.Key
	srv   *httptest.Server
	mux   *http.ServeMux // routes; EnableLogin adds to them

	mu        sync.Mutex
	nonces    map[string]bool // issued and not yet used
	removed   string          // non-empty: every challenge gets 401 with this message
	devices   map[wire.Key]wire.Device
	endpoints []wire.EndpointsRequest
	loggedOut []wire.Key
	nStreams  int
	// onStream serves each authenticated map stream, numbered from 1, until it returns.
	onStream func(n int, s *Stream)
	logins   []*fakeLogin // browser logins, oldest first (login.go)
	gw       gatewayState // routes and virtual devices (gateway.go)
}

// Stream is one open map stream.
type Stream struct {
	Device wire.Device // the device that opened it
	w      http.ResponseWriter
	done   <-chan struct{}
}

// Send writes one message to the stream.
func (s *Stream) Send(u wire.MapUpdate) {
	json.NewEncoder(s.w).Encode(u)
	s.w.(http.Flusher).Flush()
}

// Done is closed when the client goes away.
func (s *Stream) Done() <-chan struct{} { return s.done }

// NewBroker starts a fake broker that t cleans up. By default a map stream gets an empty
// full map and is then held open.
func NewBroker(t testing.TB) *Broker {
	priv, err := wire.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	b := &Broker{
		priv:    priv,
		nonces:  map[string]bool{},
		devices: map[wire.Key]wire.Device{},
		onStream: func(_ int, s *Stream) {
			s.Send(wire.MapUpdate{Full: true})
			<-s.Done()
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wire.PathInfo, b.info)
	mux.HandleFunc("POST "+wire.PathRegister, b.register)
	mux.HandleFunc("POST "+wire.PathChallenge, b.challenge)
	mux.HandleFunc("GET "+wire.PathMap, b.stream)
	mux.HandleFunc("POST "+wire.PathEndpoints, b.updateEndpoints)
	mux.HandleFunc("POST "+wire.PathLogout, b.logout)
	mux.HandleFunc("POST "+wire.PathRoutes, b.routes)
	mux.HandleFunc("POST "+wire.PathVDevs, b.vdevAdd)
	mux.HandleFunc("POST "+wire.PathVDevsRemove, b.vdevRemove)
	b.mux = mux
	b.srv = httptest.NewTLSServer(mux)
	t.Cleanup(b.srv.Close)
	b.URL = b.srv.URL
	b.CAPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.srv.Certificate().Raw}))
	return b
}

// OnStream replaces how map streams are served.
func (b *Broker) OnStream(f func(n int, s *Stream)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onStream = f
}

// Remove makes every later challenge fail with 401 and reason, as for a removed device.
func (b *Broker) Remove(reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.removed = reason
}

// Endpoints returns the endpoint reports received so far.
func (b *Broker) Endpoints() []wire.EndpointsRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]wire.EndpointsRequest(nil), b.endpoints...)
}

// LoggedOut returns the keys of devices that logged out.
func (b *Broker) LoggedOut() []wire.Key {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]wire.Key(nil), b.loggedOut...)
}

// Streams is how many authenticated map streams were opened.
func (b *Broker) Streams() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.nStreams
}

// Close stops the server (open streams are cut).
func (b *Broker) Close() {
	b.srv.CloseClientConnections()
	b.srv.Close()
}

func (b *Broker) info(w http.ResponseWriter, r *http.Request) {
	json.NewEncoder(w).Encode(wire.BrokerInfo{Version: wire.ProtocolVersion, PublicKey: b.priv.Public(), Domain: "mesh.test"})
}

func (b *Broker) register(w http.ResponseWriter, r *http.Request) {
	var req wire.RegisterRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		Fail(w, http.StatusBadRequest, "malformed request")
		return
	}
	if req.AuthKey != GoodAuthKey {
		Fail(w, http.StatusUnauthorized, "auth key is not valid")
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	d, ok := b.devices[req.PublicKey]
	if !ok {
		n := len(b.devices) + 1
		d = wire.Device{
			ID:        "dev" + strconv.Itoa(n),
			Account:   "acme",
			PublicKey: req.PublicKey,
			Address:   netip.AddrFrom4([4]byte{100, 64, 0, byte(n)}),
		}
	}
	d.Name, d.FQDN, d.Endpoints = req.Name, req.Name+".acme.mesh.test", req.Endpoints
	b.devices[req.PublicKey] = d
	json.NewEncoder(w).Encode(wire.RegisterResponse{Device: d})
}

func (b *Broker) challenge(w http.ResponseWriter, r *http.Request) {
	var req wire.ChallengeRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		Fail(w, http.StatusBadRequest, "malformed request")
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.removed != "" {
		Fail(w, http.StatusUnauthorized, b.removed)
		return
	}
	n := make([]byte, 16)
	rand.Read(n)
	nonce := base64.RawURLEncoding.EncodeToString(n)
	b.nonces[nonce] = true
	json.NewEncoder(w).Encode(wire.ChallengeResponse{Nonce: nonce, Expires: time.Now().Add(30 * time.Second)})
}

// authenticate checks the devauth header over a fresh nonce and returns the device.
func (b *Broker) authenticate(w http.ResponseWriter, r *http.Request, body []byte) (wire.Device, bool) {
	h, err := devauth.ParseHeader(r.Header.Get(wire.AuthHeader))
	if err != nil {
		Fail(w, http.StatusUnauthorized, err.Error())
		return wire.Device{}, false
	}
	b.mu.Lock()
	fresh := b.nonces[h.Nonce]
	delete(b.nonces, h.Nonce)
	d, known := b.devices[h.Key]
	b.mu.Unlock()
	if !fresh || !devauth.Verify(b.priv, h, r.Method, r.URL.Path, body) {
		Fail(w, http.StatusUnauthorized, "authentication failed")
		return wire.Device{}, false
	}
	if !known {
		d = wire.Device{PublicKey: h.Key}
	}
	return d, true
}

func (b *Broker) stream(w http.ResponseWriter, r *http.Request) {
	d, ok := b.authenticate(w, r, nil)
	if !ok {
		return
	}
	b.mu.Lock()
	b.nStreams++
	n, serve := b.nStreams, b.onStream
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	serve(n, &Stream{Device: d, w: w, done: r.Context().Done()})
}

func (b *Broker) updateEndpoints(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if _, ok := b.authenticate(w, r, body); !ok {
		return
	}
	var req wire.EndpointsRequest
	if err := json.Unmarshal(body, &req); err != nil {
		Fail(w, http.StatusBadRequest, "malformed request")
		return
	}
	b.mu.Lock()
	b.endpoints = append(b.endpoints, req)
	b.mu.Unlock()
}

func (b *Broker) logout(w http.ResponseWriter, r *http.Request) {
	d, ok := b.authenticate(w, r, nil)
	if !ok {
		return
	}
	b.mu.Lock()
	delete(b.devices, d.PublicKey)
	b.loggedOut = append(b.loggedOut, d.PublicKey)
	b.mu.Unlock()
}

// Fail writes a broker error answer.
func Fail(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(wire.Error{Error: msg})
}
