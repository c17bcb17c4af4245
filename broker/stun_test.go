package broker

import (
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// bindingRequest builds a binding request, with a FINGERPRINT if fingerprint is set.
func bindingRequest(t testing.TB, fingerprint bool) *stun.Message {
	t.Helper()
	setters := []stun.Setter{stun.TransactionID, stun.BindingRequest}
	if fingerprint {
		setters = append(setters, stun.Fingerprint)
	}
	m, err := stun.Build(setters...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// mappedAddress decodes a binding success response to req and returns its
// XOR-MAPPED-ADDRESS.
func mappedAddress(t *testing.T, resp []byte, req *stun.Message) netip.AddrPort {
	t.Helper()
	m := &stun.Message{Raw: append([]byte(nil), resp...)}
	if err := m.Decode(); err != nil {
		t.Fatalf("response does not decode: %v", err)
	}
	if m.Type != stun.BindingSuccess || m.TransactionID != req.TransactionID {
		t.Fatalf("response %v with transaction %x, want binding success for %x", m.Type, m.TransactionID, req.TransactionID)
	}
	if req.Contains(stun.AttrFingerprint) {
		if err := stun.Fingerprint.Check(m); err != nil {
			t.Fatalf("response fingerprint: %v", err)
		}
	}
	var xa stun.XORMappedAddress
	if err := xa.GetFrom(m); err != nil {
		t.Fatalf("response has no XOR-MAPPED-ADDRESS: %v", err)
	}
	a, ok := netip.AddrFromSlice(xa.IP)
	if !ok {
		t.Fatalf("mapped IP %v", xa.IP)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(xa.Port))
}

func TestSTUNReply(t *testing.T) {
	now := time.Unix(0, 0)
	s := newSTUNServer(func() time.Time { return now })
	for _, src := range []netip.AddrPort{
		netip.MustParseAddrPort("198.51.100.7:40000"),
		netip.MustParseAddrPort("[2001:db8::7]:40001"),
		netip.MustParseAddrPort("[::ffff:198.51.100.8]:40002"),
	} {
		for _, fp := range []bool{false, true} {
			req := bindingRequest(t, fp)
			resp := s.reply(req.Raw, src)
			if resp == nil {
				t.Fatalf("%v (fingerprint %v): no reply", src, fp)
			}
			if got := mappedAddress(t, resp, req); got != netip.AddrPortFrom(src.Addr().Unmap(), src.Port()) {
				t.Fatalf("mapped %v, want %v", got, src)
			}
			if len(resp) > len(req.Raw)+24 {
				t.Fatalf("reply of %d bytes to a request of %d", len(resp), len(req.Raw))
			}
		}
	}
}

func TestSTUNIgnoresGarbage(t *testing.T) {
	s := newSTUNServer(time.Now)
	src := netip.MustParseAddrPort("198.51.100.7:40000")
	good := bindingRequest(t, true).Raw
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	success, err := stun.Build(stun.TransactionID, stun.BindingSuccess)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":            {},
		"wireguard":        append([]byte{1, 0, 0, 0}, make([]byte, 144)...),
		"short header":     good[:19],
		"no magic cookie":  mutate(func(b []byte) []byte { b[4] ^= 0xff; return b }),
		"not a request":    success.Raw,
		"length too long":  mutate(func(b []byte) []byte { b[3] += 4; return b }),
		"trailing bytes":   append(append([]byte(nil), good...), 0, 0, 0, 0),
		"odd length":       mutate(func(b []byte) []byte { b[3]++; return append(b, 0) }),
		"bad fingerprint":  mutate(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }),
		"truncated attr":   mutate(func(b []byte) []byte { b[22], b[23] = 0, 200; return b }),
		"attr after print": append(mutate(func(b []byte) []byte { b[3] += 8; return b }), 0x80, 0x22, 0, 4, 'w', 'e', 'f', 't'),
	}
	for name, pkt := range cases {
		if resp := s.reply(pkt, src); resp != nil {
			t.Errorf("%s: got a %d-byte reply, want none", name, len(resp))
		}
	}
	if s.reply(good, src) == nil {
		t.Fatal("the well-formed request got no reply")
	}
}

func TestSTUNRateLimit(t *testing.T) {
	now := time.Unix(0, 0)
	s := newSTUNServer(func() time.Time { return now })
	src := netip.MustParseAddrPort("198.51.100.7:40000")
	req := bindingRequest(t, false).Raw
	for i := range stunBurst {
		if s.reply(req, src) == nil {
			t.Fatalf("request %d of the burst got no reply", i)
		}
	}
	if s.reply(req, src) != nil {
		t.Fatal("request over the burst got a reply")
	}
	// Another port of the same address shares its bucket; another address does not.
	if s.reply(req, netip.MustParseAddrPort("198.51.100.7:1")) != nil {
		t.Fatal("another port of a limited address got a reply")
	}
	if s.reply(req, netip.MustParseAddrPort("198.51.100.8:40000")) == nil {
		t.Fatal("another address got no reply")
	}
	// IPv6 sources are limited by /64.
	v6 := func(a string) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr(a), 1) }
	for range stunBurst {
		s.reply(req, v6("2001:db8:0:1::1"))
	}
	if s.reply(req, v6("2001:db8:0:1::2")) != nil || s.reply(req, v6("2001:db8:0:2::1")) == nil {
		t.Fatal("IPv6 sources not limited per /64")
	}
	now = now.Add(stunRefill)
	if s.reply(req, src) == nil {
		t.Fatal("no reply after the bucket refilled")
	}
}

// TestSTUNOverUDP: the broker answers on both STUN ports with the test socket's own
// address, announces both in the map, and a garbage packet gets no answer.
func TestSTUNOverUDP(t *testing.T) {
	tb := startBroker(t, func(c *Config) { c.STUNListen = []string{"127.0.0.1:0", "127.0.0.1:0"} })
	tb.setupAccount(t, "acme")
	a := tb.newDevice(t, "a")
	a.register(t, tb.authKey(t, "acme", false))
	full := a.openMap(t).next(t)
	if len(full.STUN) != 2 || full.STUN[0] == full.STUN[1] {
		t.Fatalf("map STUN %v, want two servers", full.STUN)
	}

	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(wait))
	self := c.LocalAddr().(*net.UDPAddr).AddrPort()
	buf := make([]byte, 1500)
	for _, server := range full.STUN {
		dst := netip.MustParseAddrPort(server)
		// Garbage first: the serve loop handles packets in order, so the first reply
		// must be to the real request that follows.
		if _, err := c.WriteToUDPAddrPort([]byte("GET / HTTP/1.1\r\n\r\n"), dst); err != nil {
			t.Fatal(err)
		}
		req := bindingRequest(t, true)
		if _, err := c.WriteToUDPAddrPort(req.Raw, dst); err != nil {
			t.Fatal(err)
		}
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no STUN reply from %s: %v", dst, err)
		}
		if from != dst {
			t.Fatalf("reply from %v, want %v", from, dst)
		}
		if got := mappedAddress(t, buf[:n], req); got != self {
			t.Fatalf("%s mapped us to %v, want %v", dst, got, self)
		}
	}
}

func TestPublicAddrs(t *testing.T) {
	pub := []netip.Addr{netip.MustParseAddr("203.0.113.1")}
	for _, c := range []struct {
		api, listen string
		public      []netip.Addr
		want        []netip.Addr
	}{
		{":8443", "192.0.2.5:3478", nil, []netip.Addr{netip.MustParseAddr("192.0.2.5")}},
		{":8443", "192.0.2.5:3478", pub, []netip.Addr{netip.MustParseAddr("192.0.2.5")}},
		{":8443", ":3478", pub, pub},
		{"192.0.2.9:8443", "0.0.0.0:3478", nil, []netip.Addr{netip.MustParseAddr("192.0.2.9")}},
		{"192.0.2.9:8443", "[::]:3478", pub, pub},
		{":8443", ":3478", nil, nil},
	} {
		b := &Broker{cfg: Config{Listen: c.api, PublicAddrs: c.public}}
		if got := b.publicAddrs(c.listen); !slices.Equal(got, c.want) {
			t.Errorf("api %s, listen %s, public %v: %v, want %v", c.api, c.listen, c.public, got, c.want)
		}
	}
}

func TestSTUNWildcardAnnouncesPublicAddr(t *testing.T) {
	tb := startBroker(t, func(c *Config) {
		c.STUNListen = []string{"0.0.0.0:0"}
		c.PublicAddrs = []netip.Addr{netip.MustParseAddr("192.0.2.1")}
	})
	if len(tb.stunAddrs) != 1 || !strings.HasPrefix(tb.stunAddrs[0], "192.0.2.1:") {
		t.Fatalf("announced %v, want the public address", tb.stunAddrs)
	}
	// Without a public address and with the API on a wildcard, the broker cannot
	// tell what to announce, and says so.
	b, err := New(t.Context(), Config{DataDir: t.TempDir(), Listen: ":0", STUNListen: []string{":0"},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "--public-addr") {
		t.Fatalf("start with nothing to announce: %v, want an error naming --public-addr", err)
	}
}

func FuzzParseBindingRequest(f *testing.F) {
	f.Add(bindingRequest(f, false).Raw)
	f.Add(bindingRequest(f, true).Raw)
	f.Add([]byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	src := netip.MustParseAddrPort("192.0.2.1:1")
	f.Fuzz(func(t *testing.T, pkt []byte) {
		resp := newSTUNServer(time.Now).reply(pkt, src)
		if resp != nil && len(resp) > len(pkt)+24 {
			t.Fatalf("reply of %d bytes to %d", len(resp), len(pkt))
		}
	})
}
