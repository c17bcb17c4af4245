package broker

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/weftmesh/weft/broker/store"
	"github.com/weftmesh/weft/wire"
)

func TestInfo(t *testing.T) {
	tb := startBroker(t, func(c *Config) { c.Domain = "Mesh.Example." })
	status, body := tb.do(t, http.MethodGet, wire.PathInfo, nil, nil)
	if status != http.StatusOK {
		t.Fatalf("info: %d %s", status, body)
	}
	var info wire.BrokerInfo
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatal(err)
	}
	if info.Version != wire.ProtocolVersion || info.PublicKey != tb.PublicKey() || info.Domain != "mesh.example" {
		t.Fatalf("info = %+v", info)
	}
	if status, body := tb.do(t, http.MethodPost, wire.PathInfo, nil, nil); status != http.StatusMethodNotAllowed {
		t.Fatalf("POST info: %d %s", status, body)
	} else {
		errorLine(t, body)
	}
	if status, body := tb.do(t, http.MethodGet, "/v1/nope", nil, nil); status != http.StatusNotFound {
		t.Fatalf("unknown path: %d", status)
	} else {
		errorLine(t, body)
	}
}

func TestPlainHTTPRefused(t *testing.T) {
	tb := startBroker(t, nil)
	resp, err := http.Get("http://" + tb.Addr().String() + wire.PathInfo)
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP request answered with 200")
		}
	}
}

func TestRegisterAndAuthenticate(t *testing.T) {
	tb := startBroker(t, nil)
	tb.setupAccount(t, "acme")
	a := tb.newDevice(t, "laptop")
	a.register(t, tb.authKey(t, "acme", false))

	if !store.MeshPrefix.Contains(a.Address) || a.FQDN != "laptop.acme.weft.internal" || a.Account != "acme" {
		t.Fatalf("registered device %+v", a.Device)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:51820"), netip.MustParseAddrPort("192.168.1.10:51820")}
	if !slices.Equal(a.Endpoints, want) {
		t.Fatalf("endpoints %v, want observed then reported %v", a.Endpoints, want)
	}

	// A good authenticated request.
	body := mustJSON(t, wire.EndpointsRequest{ListenPort: 4242, Endpoints: []netip.AddrPort{
		netip.MustParseAddrPort("10.1.2.3:4242"), netip.MustParseAddrPort("127.0.0.1:4242"),
		netip.MustParseAddrPort("0.0.0.0:4242"), netip.MustParseAddrPort("224.0.0.1:4242"),
		netip.MustParseAddrPort("10.1.2.4:0")}})
	nonce, _, _ := a.challenge(t)
	hdr := a.authHeader(t, nonce, http.MethodPost, wire.PathEndpoints, body)
	if status, b := tb.do(t, http.MethodPost, wire.PathEndpoints, body, hdr); status != http.StatusNoContent {
		t.Fatalf("endpoints: %d %s", status, b)
	}
	d, err := tb.store.DeviceByKey(t.Context(), a.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	want = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:4242"), netip.MustParseAddrPort("10.1.2.3:4242")}
	if !slices.Equal(d.Endpoints, want) || d.ListenPort != 4242 {
		t.Fatalf("stored endpoints %v port %d, want %v (observed first, unusable dropped, no duplicates)", d.Endpoints, d.ListenPort, want)
	}

	// Replaying the same nonce and signature fails.
	status, b := tb.do(t, http.MethodPost, wire.PathEndpoints, body, hdr)
	if status != http.StatusUnauthorized || !strings.Contains(errorLine(t, b), "nonce") {
		t.Fatalf("replay: %d %s", status, b)
	}

	// A body altered after signing fails.
	nonce, _, _ = a.challenge(t)
	hdr = a.authHeader(t, nonce, http.MethodPost, wire.PathEndpoints, body)
	tampered := bytes.Replace(body, []byte("4242"), []byte("4243"), 1)
	if status, b := tb.do(t, http.MethodPost, wire.PathEndpoints, tampered, hdr); status != http.StatusUnauthorized {
		t.Fatalf("tampered body: %d %s", status, b)
	}
	// ... and that spent the nonce too.
	if status, _ := tb.do(t, http.MethodPost, wire.PathEndpoints, body, hdr); status != http.StatusUnauthorized {
		t.Fatalf("nonce reused after a failed attempt: %d", status)
	}

	// Signed for another path.
	nonce, _, _ = a.challenge(t)
	hdr = a.authHeader(t, nonce, http.MethodPost, wire.PathLogout, body)
	if status, _ := tb.do(t, http.MethodPost, wire.PathEndpoints, body, hdr); status != http.StatusUnauthorized {
		t.Fatalf("signature for another path: %d", status)
	}

	// The right public key but the wrong private key.
	nonce, _, _ = a.challenge(t)
	impostor := tb.newDevice(t, "laptop")
	ih := impostor.authHeader(t, nonce, http.MethodPost, wire.PathEndpoints, body)
	ih.Set(wire.AuthHeader, strings.Replace(ih.Get(wire.AuthHeader), impostor.priv.Public().String(), a.priv.Public().String(), 1))
	if status, b := tb.do(t, http.MethodPost, wire.PathEndpoints, body, ih); status != http.StatusUnauthorized {
		t.Fatalf("wrong private key: %d %s", status, b)
	}

	// An unknown key gets no nonce.
	if _, status, b := impostor.challenge(t); status != http.StatusUnauthorized || !strings.Contains(errorLine(t, b), "unknown key") {
		t.Fatalf("challenge for unknown key: %d %s", status, b)
	}
	// No header, a garbled header.
	if status, b := tb.do(t, http.MethodPost, wire.PathEndpoints, body, nil); status != http.StatusUnauthorized {
		t.Fatalf("no auth header: %d %s", status, b)
	}
	if status, _ := tb.do(t, http.MethodPost, wire.PathEndpoints, body, http.Header{wire.AuthHeader: {"key=zzz"}}); status != http.StatusUnauthorized {
		t.Fatalf("garbled auth header: %d", status)
	}
	// A nonce issued to another device.
	b2 := tb.newDevice(t, "desktop")
	b2.register(t, tb.authKey(t, "acme", false))
	nonce, _, _ = b2.challenge(t)
	if status, _ := tb.do(t, http.MethodPost, wire.PathEndpoints, body, a.authHeader(t, nonce, http.MethodPost, wire.PathEndpoints, body)); status != http.StatusUnauthorized {
		t.Fatalf("nonce of another device: %d", status)
	}
	// The endpoints are still those of the good request.
	d, _ = tb.store.DeviceByKey(t.Context(), a.priv.Public())
	if d.ListenPort != 4242 {
		t.Fatalf("a refused request changed the device: port %d", d.ListenPort)
	}
}

func TestBadRegistrationsStoreNothing(t *testing.T) {
	tb := startBroker(t, nil)
	tb.setupAccount(t, "acme")
	key := tb.authKey(t, "acme", false)
	d := tb.newDevice(t, "laptop")
	good := mustJSON(t, d.request(key))
	withField := func(k string, v any) []byte {
		var m map[string]any
		json.Unmarshal(good, &m)
		m[k] = v
		return mustJSON(t, m)
	}
	bad := []struct {
		name   string
		body   []byte
		status int
	}{
		{"malformed", []byte(`{"version":1,`), http.StatusBadRequest},
		{"not an object", []byte(`[1,2]`), http.StatusBadRequest},
		{"empty", nil, http.StatusBadRequest},
		{"trailing data", append(append([]byte{}, good...), []byte(`{}`)...), http.StatusBadRequest},
		{"unknown field", withField("colour", "blue"), http.StatusBadRequest},
		{"bad name", withField("name", "My_Laptop"), http.StatusBadRequest},
		{"empty name", withField("name", ""), http.StatusBadRequest},
		{"bad key", withField("public_key", "not-base64!"), http.StatusBadRequest},
		{"no version", withField("version", 0), http.StatusBadRequest},
		{"newer version", withField("version", wire.ProtocolVersion+1), http.StatusBadRequest},
		{"port out of range", withField("listen_port", 70000), http.StatusBadRequest},
		{"bad endpoint", withField("endpoints", []string{"nonsense"}), http.StatusBadRequest},
		{"key and password", withField("password", "hunter22"), http.StatusBadRequest},
		{"no credentials", withField("auth_key", ""), http.StatusBadRequest},
		{"oversized", withField("name", strings.Repeat("a", wire.MaxRequestBody)), http.StatusRequestEntityTooLarge},
		{"wrong auth key", withField("auth_key", "weftkey-000000000000-"+strings.Repeat("A", 43)), http.StatusUnauthorized},
		{"malformed auth key", withField("auth_key", "tskey-123"), http.StatusUnauthorized},
	}
	for _, c := range bad {
		status, body := tb.do(t, http.MethodPost, wire.PathRegister, c.body, nil)
		if status != c.status {
			t.Errorf("%s: status %d (%s), want %d", c.name, status, body, c.status)
			continue
		}
		if msg := errorLine(t, body); strings.Contains(msg, "\n") {
			t.Errorf("%s: error %q is not one line", c.name, msg)
		}
	}
	if n := tb.deviceCount(t, "acme"); n != 0 {
		t.Fatalf("%d devices stored by bad requests", n)
	}
	// The single-use key was not spent by any of them.
	d.register(t, key)
	status, body := tb.do(t, http.MethodPost, wire.PathRegister, mustJSON(t, tb.newDevice(t, "other").request(key)), nil)
	if status != http.StatusUnauthorized || !strings.Contains(errorLine(t, body), "already used") {
		t.Fatalf("second use of single-use key: %d %s", status, body)
	}
}

func TestConcurrentRegistrationsWithOneKey(t *testing.T) {
	tb := startBroker(t, nil)
	tb.setupAccount(t, "acme")
	key := tb.authKey(t, "acme", false)
	const n = 20
	statuses := make(chan int, n)
	devs := make([]*device, n)
	for i := range devs {
		devs[i] = tb.newDevice(t, "dev"+string(rune('a'+i)))
	}
	for _, d := range devs {
		go func() {
			status, _ := tb.do(t, http.MethodPost, wire.PathRegister, mustJSON(t, d.request(key)), nil)
			statuses <- status
		}()
	}
	ok := 0
	for range n {
		if <-statuses == http.StatusOK {
			ok++
		}
	}
	if ok != 1 || tb.deviceCount(t, "acme") != 1 {
		t.Fatalf("%d registrations succeeded, %d devices; want 1, 1", ok, tb.deviceCount(t, "acme"))
	}
}

func TestPasswordRegistrationAndRateLimit(t *testing.T) {
	tb := startBroker(t, nil)
	tb.setupAccount(t, "acme")
	if err := tb.store.AddUser(t.Context(), "acme", "ann@example.com", "correct horse"); err != nil {
		t.Fatal(err)
	}
	d := tb.newDevice(t, "phone")
	req := d.request("")
	req.Account, req.Email, req.Password = "acme", "ann@example.com", "correct horse"
	status, body := tb.do(t, http.MethodPost, wire.PathRegister, mustJSON(t, req), nil)
	if status != http.StatusOK {
		t.Fatalf("password registration: %d %s", status, body)
	}

	req.Password = "wrong horse"
	for i := range passwordBurst - 1 {
		status, body := tb.do(t, http.MethodPost, wire.PathRegister, mustJSON(t, req), nil)
		if status != http.StatusUnauthorized || !strings.Contains(errorLine(t, body), "wrong account, email or password") {
			t.Fatalf("wrong password %d: %d %s", i, status, body)
		}
	}
	req.Password = "correct horse"
	status, body = tb.do(t, http.MethodPost, wire.PathRegister, mustJSON(t, req), nil)
	if status != http.StatusTooManyRequests || !strings.Contains(errorLine(t, body), "too many password attempts") {
		t.Fatalf("attempt past the limit: %d %s", status, body)
	}
	// Another email in the same account has its own bucket.
	req.Email = "bob@example.com"
	if status, _ := tb.do(t, http.MethodPost, wire.PathRegister, mustJSON(t, req), nil); status != http.StatusUnauthorized {
		t.Fatalf("other email: %d, want 401", status)
	}
}
