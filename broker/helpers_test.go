package broker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/weftmesh/weft/broker/store"
	"github.com/weftmesh/weft/internal/devauth"
	"github.com/weftmesh/weft/wire"
)

// wait bounds how long a test waits for something that should happen; reaching it is a failure.
const wait = 10 * time.Second

type testBroker struct {
	*Broker
	dir  string
	url  string
	hc   *http.Client
	stop func() // shuts the broker down; also run at cleanup
}

func (tb *testBroker) stopForTest(t *testing.T) {
	t.Helper()
	tb.stop()
}

func startBroker(t *testing.T, mod func(*Config)) *testBroker {
	t.Helper()
	dir := t.TempDir()
	cfg := Config{
		DataDir: dir,
		Listen:  "127.0.0.1:0",
		Logger:  slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		StoreOptions: store.Options{PasswordParams: &argon2id.Params{
			Memory: 1024, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}},
	}
	if mod != nil {
		mod(&cfg)
	}
	return runBroker(t, cfg)
}

func runBroker(t *testing.T, cfg Config) *testBroker {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("new broker: %v", err)
	}
	if err := b.Start(ctx); err != nil {
		b.Close()
		t.Fatalf("start broker: %v", err)
	}
	var stop func()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := b.Wait(); err != nil {
			t.Errorf("broker: %v", err)
		}
		b.Close()
	}
	t.Cleanup(stop)
	tb := &testBroker{Broker: b, dir: cfg.DataDir, url: "https://" + b.Addr().String(), stop: stop}
	if cfg.TLSCert == "" {
		tb.hc = tlsClient(t, filepath.Join(cfg.DataDir, CAFile))
	}
	return tb
}

// tlsClient trusts only the CA in caFile.
func tlsClient(t *testing.T, caFile string) *http.Client {
	t.Helper()
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("no CA in " + caFile)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// do sends a request and returns the status and body.
func (tb *testBroker) do(t *testing.T, method, path string, body []byte, hdr http.Header) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, tb.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := tb.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// errorLine decodes an error body, failing if it is not {"error": "..."}.
func errorLine(t *testing.T, body []byte) string {
	t.Helper()
	var e wire.Error
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == "" {
		t.Fatalf("error body %q is not {\"error\":\"...\"}", body)
	}
	return e.Error
}

func (tb *testBroker) setupAccount(t *testing.T, name string) {
	t.Helper()
	if _, err := tb.store.CreateAccount(context.Background(), name); err != nil {
		t.Fatal(err)
	}
}

func (tb *testBroker) authKey(t *testing.T, account string, reusable bool) string {
	t.Helper()
	k, err := tb.store.CreateAuthKey(context.Background(), account, store.AuthKeyOptions{Reusable: reusable})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type device struct {
	tb   *testBroker
	priv wire.Key
	name string
	wire.Device
}

func (tb *testBroker) newDevice(t *testing.T, name string) *device {
	t.Helper()
	k, err := wire.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return &device{tb: tb, priv: k, name: name}
}

func (d *device) request(authKey string) wire.RegisterRequest {
	return wire.RegisterRequest{Version: wire.ProtocolVersion, PublicKey: d.priv.Public(), Name: d.name,
		ListenPort: 51820, AuthKey: authKey,
		Endpoints: []netip.AddrPort{netip.MustParseAddrPort("192.168.1.10:51820")}}
}

// register registers d, failing the test unless it succeeds.
func (d *device) register(t *testing.T, authKey string) {
	t.Helper()
	status, body := d.tb.do(t, http.MethodPost, wire.PathRegister, mustJSON(t, d.request(authKey)), nil)
	if status != http.StatusOK {
		t.Fatalf("register %s: %d %s", d.name, status, body)
	}
	var resp wire.RegisterResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	d.Device = resp.Device
}

func (d *device) challenge(t *testing.T) (string, int, []byte) {
	t.Helper()
	status, body := d.tb.do(t, http.MethodPost, wire.PathChallenge,
		mustJSON(t, wire.ChallengeRequest{PublicKey: d.priv.Public()}), nil)
	if status != http.StatusOK {
		return "", status, body
	}
	var c wire.ChallengeResponse
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Nonce) < 22 || time.Until(c.Expires) <= 0 {
		t.Fatalf("challenge %+v: nonce too short or already expired", c)
	}
	return c.Nonce, status, body
}

// authHeader signs method, path and body with d's key over nonce.
func (d *device) authHeader(t *testing.T, nonce, method, path string, body []byte) http.Header {
	t.Helper()
	shared, err := devauth.SharedKey(d.priv, d.tb.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	h := devauth.Header{Key: d.priv.Public(), Nonce: nonce, MAC: devauth.MAC(shared, method, path, nonce, body)}
	return http.Header{wire.AuthHeader: {h.Format()}}
}

// authed sends an authenticated request with a fresh nonce.
func (d *device) authed(t *testing.T, method, path string, body []byte) (int, []byte) {
	t.Helper()
	nonce, status, cbody := d.challenge(t)
	if status != http.StatusOK {
		return status, cbody
	}
	return d.tb.do(t, method, path, body, d.authHeader(t, nonce, method, path, body))
}

// mapStream reads a device's map stream.
type mapStream struct {
	resp    *http.Response
	updates chan wire.MapUpdate // closed at the end of the stream
}

func (d *device) openMap(t *testing.T) *mapStream {
	t.Helper()
	nonce, status, body := d.challenge(t)
	if status != http.StatusOK {
		t.Fatalf("challenge for map: %d %s", status, body)
	}
	req, _ := http.NewRequest(http.MethodGet, d.tb.url+wire.PathMap, nil)
	req.Header = d.authHeader(t, nonce, http.MethodGet, wire.PathMap, nil)
	resp, err := d.tb.hc.Do(req)
	if err != nil {
		t.Fatalf("open map: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("open map: %d %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Fatalf("map Content-Type %q", ct)
	}
	ms := &mapStream{resp: resp, updates: make(chan wire.MapUpdate, 100)}
	go func() {
		defer close(ms.updates)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var u wire.MapUpdate
			dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&u); err != nil {
				panic(fmt.Sprintf("map line %q: %v", sc.Bytes(), err))
			}
			ms.updates <- u
		}
	}()
	t.Cleanup(func() { resp.Body.Close() })
	return ms
}

// next returns the next update, skipping keepalives.
func (ms *mapStream) next(t *testing.T) wire.MapUpdate {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case u, ok := <-ms.updates:
			if !ok {
				t.Fatal("map stream ended")
			}
			if isKeepalive(u) {
				continue
			}
			return u
		case <-timeout:
			t.Fatal("no map update")
		}
	}
}

// closed waits for the stream to end, failing on any update but keepalives.
func (ms *mapStream) closed(t *testing.T) {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case u, ok := <-ms.updates:
			if !ok {
				return
			}
			if !isKeepalive(u) {
				t.Fatalf("update %+v where the end of the stream was expected", u)
			}
		case <-timeout:
			t.Fatal("map stream did not end")
		}
	}
}

func isKeepalive(u wire.MapUpdate) bool {
	return !u.Full && u.Self == nil && len(u.Peers) == 0 && len(u.Removed) == 0 && u.Revoked == "" &&
		u.Filter == nil && u.Relays == nil && len(u.STUN) == 0 && len(u.Punch) == 0
}

func (tb *testBroker) deviceCount(t *testing.T, account string) int {
	t.Helper()
	devs, err := tb.store.AccountDevices(context.Background(), account)
	if err != nil {
		t.Fatal(err)
	}
	return len(devs)
}
