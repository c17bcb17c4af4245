package dnsserver

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const zone = "weft.example.com."

var testNSAddrs = []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53")}

// fakeResolver is an in-memory Resolver whose data tests change between queries.
type fakeResolver struct {
	mu       sync.Mutex
	accounts map[string]map[string]netip.Addr // account → device → address
	err      error                            // returned by every call when set
	calls    int

	// block, when set, makes LookupDevice signal entered and wait for release.
	entered chan struct{}
	release chan struct{}
}

func newFakeResolver() *fakeResolver {
	return &fakeResolver{accounts: map[string]map[string]netip.Addr{
		"acme": {
			"laptop": netip.MustParseAddr("100.64.0.1"),
			"nas":    netip.MustParseAddr("100.64.0.2"),
			"v6box":  netip.MustParseAddr("fd7a:115c:a1e0::5"),
		},
		"empty": {},
	}}
}

func (f *fakeResolver) LookupDevice(ctx context.Context, account, device string) (netip.Addr, bool, error) {
	if f.entered != nil {
		f.entered <- struct{}{}
		<-f.release
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return netip.Addr{}, false, f.err
	}
	a, ok := f.accounts[account][device]
	return a, ok, nil
}

func (f *fakeResolver) AccountExists(ctx context.Context, account string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return false, f.err
	}
	_, ok := f.accounts[account]
	return ok, nil
}

func (f *fakeResolver) set(account, device, addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.accounts[account] == nil {
		f.accounts[account] = map[string]netip.Addr{}
	}
	if addr == "" {
		delete(f.accounts[account], device)
		return
	}
	f.accounts[account][device] = netip.MustParseAddr(addr)
}

func (f *fakeResolver) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// recorder is a dns.ResponseWriter that packs what it is given, as the real one does,
// and keeps the bytes and their parse.
type recorder struct {
	tcp    bool
	wire   []byte
	msg    *dns.Msg
	writes int
	err    error // why a response could not be packed or parsed; the server only logs it
}

func (w *recorder) LocalAddr() net.Addr {
	if w.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}

func (w *recorder) RemoteAddr() net.Addr {
	if w.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000}
}

func (w *recorder) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		w.err = fmt.Errorf("recorder: response does not pack: %w", err)
		return w.err
	}
	_, err = w.Write(b)
	return err
}

func (w *recorder) Write(b []byte) (int, error) {
	w.writes++
	w.wire = append([]byte(nil), b...)
	w.msg = new(dns.Msg)
	if err := w.msg.Unpack(b); err != nil {
		w.err = fmt.Errorf("recorder: response does not parse: %w", err)
		return 0, w.err
	}
	return len(b), nil
}

func (w *recorder) Close() error        { return nil }
func (w *recorder) TsigStatus() error   { return nil }
func (w *recorder) TsigTimersOnly(bool) {}
func (w *recorder) Hijack()             {}

// testServer returns a server for zone with the fake resolver and a log buffer.
func testServer(t *testing.T, res Resolver, mod func(*Config)) (*Server, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	cfg := Config{
		Zone:     "Weft.Example.COM",
		NSAddrs:  testNSAddrs,
		Resolver: res,
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s.now = func() time.Time { return time.Unix(1_750_000_000, 0) }
	return s, &logs
}

// ask sends one query for name/qtype over a fake UDP transport and returns the response.
func ask(t *testing.T, s *Server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	return exchange(t, s, q, false)
}

func exchange(t *testing.T, s *Server, q *dns.Msg, tcp bool) *dns.Msg {
	t.Helper()
	w := &recorder{tcp: tcp}
	s.ServeDNS(w, q)
	if w.err != nil || w.writes != 1 {
		t.Fatalf("%v: %d responses written (%v), want 1", q.Question, w.writes, w.err)
	}
	if w.msg.Id != q.Id || !w.msg.Response {
		t.Fatalf("response id %d response=%v, want id %d and QR set", w.msg.Id, w.msg.Response, q.Id)
	}
	if w.msg.RecursionAvailable {
		t.Errorf("%v: RA set; the server is not recursive", q.Question)
	}
	return w.msg
}
