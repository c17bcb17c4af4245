package portmap

import (
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeGateway is a PCP and NAT-PMP server on loopback, written from the RFCs' layouts
// independently of the client's codec. It grants what it is asked within its own rules
// and records every request.
type fakeGateway struct {
	t    *testing.T
	conn *net.UDPConn

	mu        sync.Mutex
	pcp, pmp  bool   // the protocols it speaks; neither: it never answers
	garbage   []byte // when set, every answer is this instead
	pcpResult byte   // result code for MAP requests
	pmpResult uint16 // result code for every NAT-PMP request
	ext       netip.Addr
	portShift uint16 // the external port granted is the internal one plus this
	maxLife   uint32
	wrongPort bool // answer MAP requests for another internal port
	start     time.Time
	maps      map[uint16]uint16 // internal port → external port
	reqs      []fakeRequest
	reqCh     chan fakeRequest
}

type fakeRequest struct {
	version, op byte
	lifetime    uint32
	nonce       [12]byte
	internal    uint16
	suggested   uint16
}

func newFakeGateway(t *testing.T, pcp, pmp bool) *fakeGateway {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	g := &fakeGateway{t: t, conn: c, pcp: pcp, pmp: pmp, ext: netip.MustParseAddr("203.0.113.9"), maxLife: 3600,
		start: time.Now().Add(-time.Hour), maps: map[uint16]uint16{}, reqCh: make(chan fakeRequest, 100)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.serve()
	}()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return g
}

func (g *fakeGateway) port() int { return g.conn.LocalAddr().(*net.UDPAddr).Port }

func (g *fakeGateway) epoch() uint32 { return uint32(time.Since(g.start) / time.Second) }

func (g *fakeGateway) set(f func(g *fakeGateway)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(g)
}

// reboot loses every mapping and starts a new epoch, with a new external address.
func (g *fakeGateway) reboot(ext netip.Addr) {
	g.set(func(g *fakeGateway) { g.maps, g.start, g.ext = map[uint16]uint16{}, time.Now(), ext })
}

func (g *fakeGateway) serve() {
	buf := make([]byte, 2000)
	for {
		n, from, err := g.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		g.mu.Lock()
		reply := g.handle(buf[:n])
		g.mu.Unlock()
		if reply != nil {
			g.conn.WriteToUDPAddrPort(reply, from)
		}
	}
}

// handle records a request and returns the answer; g.mu is held.
func (g *fakeGateway) handle(b []byte) []byte {
	if len(b) < 2 {
		return nil
	}
	r := fakeRequest{version: b[0], op: b[1]}
	switch {
	case r.version == 2 && len(b) >= 24:
		r.lifetime = binary.BigEndian.Uint32(b[4:8])
		if r.op == 1 && len(b) >= 60 {
			copy(r.nonce[:], b[24:36])
			r.internal = binary.BigEndian.Uint16(b[40:42])
			r.suggested = binary.BigEndian.Uint16(b[42:44])
		}
	case r.version == 0 && r.op == 1 && len(b) == 12:
		r.internal = binary.BigEndian.Uint16(b[4:6])
		r.suggested = binary.BigEndian.Uint16(b[6:8])
		r.lifetime = binary.BigEndian.Uint32(b[8:12])
	}
	g.reqs = append(g.reqs, r)
	select {
	case g.reqCh <- r:
	default:
	}
	if g.garbage != nil {
		return g.garbage
	}
	switch {
	case r.version == 2 && g.pcp:
		return g.pcpAnswer(r)
	case r.version == 2 && g.pmp:
		// RFC 6887 §9: a NAT-PMP server says "unsupported version" in its own format.
		return binary.BigEndian.AppendUint32([]byte{0, 0x80 | r.op, 0, 1}, g.epoch())
	case r.version == 0 && g.pmp:
		return g.pmpAnswer(r)
	case r.version == 0 && g.pcp:
		return g.pcpHeader(r.op, 1, 0) // UNSUPP_VERSION
	}
	return nil
}

func (g *fakeGateway) pcpHeader(op, result byte, lifetime uint32) []byte {
	b := make([]byte, 24)
	b[0], b[1], b[3] = 2, 0x80|op, result
	binary.BigEndian.PutUint32(b[4:8], lifetime)
	binary.BigEndian.PutUint32(b[8:12], g.epoch())
	return b
}

func (g *fakeGateway) grant(r fakeRequest) (uint16, uint32) {
	if r.lifetime == 0 {
		delete(g.maps, r.internal)
		return 0, 0
	}
	ext, ok := g.maps[r.internal]
	if !ok {
		ext = r.internal + g.portShift
		g.maps[r.internal] = ext
	}
	return ext, min(r.lifetime, g.maxLife)
}

func (g *fakeGateway) pcpAnswer(r fakeRequest) []byte {
	if r.op != 1 {
		return g.pcpHeader(r.op, 0, 0)
	}
	if g.pcpResult != 0 {
		return append(g.pcpHeader(r.op, g.pcpResult, 30), make([]byte, 36)...)
	}
	ext, life := g.grant(r)
	b := g.pcpHeader(r.op, 0, life)
	internal := r.internal
	if g.wrongPort {
		internal++
	}
	b = append(b, r.nonce[:]...)
	b = append(b, 17, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, internal)
	b = binary.BigEndian.AppendUint16(b, ext)
	a := g.ext.As16()
	if life == 0 {
		a = netip.IPv4Unspecified().As16()
	}
	return append(b, a[:]...)
}

func (g *fakeGateway) pmpAnswer(r fakeRequest) []byte {
	b := binary.BigEndian.AppendUint16([]byte{0, 0x80 | r.op}, g.pmpResult)
	b = binary.BigEndian.AppendUint32(b, g.epoch())
	if g.pmpResult != 0 {
		return b
	}
	switch r.op {
	case 0:
		a := g.ext.As4()
		return append(b, a[:]...)
	case 1:
		ext, life := g.grant(r)
		b = binary.BigEndian.AppendUint16(b, r.internal)
		b = binary.BigEndian.AppendUint16(b, ext)
		return binary.BigEndian.AppendUint32(b, life)
	}
	return nil
}

// announce sends the gateway's announcement (PCP ANNOUNCE, or NAT-PMP's address response)
// from its server port to to.
func (g *fakeGateway) announce(to string, pcp bool) {
	g.t.Helper()
	g.mu.Lock()
	var b []byte
	if pcp {
		b = g.pcpHeader(0, 0, 0)
	} else {
		b = g.pmpAnswer(fakeRequest{op: 0})
	}
	g.mu.Unlock()
	if _, err := g.conn.WriteToUDPAddrPort(b, netip.MustParseAddrPort(to)); err != nil {
		g.t.Fatal(err)
	}
}

// waitRequest waits for a request that match accepts.
func (g *fakeGateway) waitRequest(match func(fakeRequest) bool) fakeRequest {
	g.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case r := <-g.reqCh:
			if match(r) {
				return r
			}
		case <-deadline:
			g.t.Fatal("the gateway got no such request")
		}
	}
}

// freeAddr is a loopback UDP address nothing listens on (for the mapper's announcements).
func freeAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

const testPort = 51820

type running struct {
	m        *Mapper
	announce string
	cancel   context.CancelFunc
	done     chan struct{}
}

func startMapper(t *testing.T, g *fakeGateway, lifetime time.Duration) *running {
	t.Helper()
	ann := freeAddr(t)
	m, err := New(Config{Port: testPort, Lifetime: lifetime, Logger: slog.New(slog.DiscardHandler),
		Gateway:    func() (netip.Addr, error) { return netip.MustParseAddr("127.0.0.1"), nil },
		ServerPort: g.port(), Announce: ann, ProbeTimeout: 300 * time.Millisecond, Retry: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, m)
	r.announce = ann
	return r
}

// run runs m until the test ends.
func run(t *testing.T, m *Mapper) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{m: m, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		m.Run(ctx)
	}()
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	r.cancel()
	<-r.done
}

// wait waits until the mapper's status satisfies ok and returns it.
func (r *running) wait(t *testing.T, what string, ok func(Status) bool) Status {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if s := r.m.Status(); ok(s) {
			return s
		}
		select {
		case <-r.m.Changed():
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%s: status stays %+v", what, r.m.Status())
		}
	}
}

func mapped(s Status) bool { return s.External.IsValid() }

func TestMapPCP(t *testing.T) {
	g := newFakeGateway(t, true, true)
	g.set(func(g *fakeGateway) { g.portShift = 7 })
	r := startMapper(t, g, time.Hour)
	s := r.wait(t, "mapped", mapped)
	want := netip.MustParseAddrPort("203.0.113.9:51827")
	if s.Protocol != PCP || s.External != want || s.Lifetime != time.Hour || s.Gateway != netip.MustParseAddr("127.0.0.1") ||
		s.Internal != netip.MustParseAddrPort("127.0.0.1:51820") || s.Err != "" {
		t.Errorf("status %+v, want PCP %s for an hour", s, want)
	}
	first := g.waitRequest(func(q fakeRequest) bool { return q.version == 2 && q.op == 1 })
	if first.internal != testPort || first.lifetime != 3600 {
		t.Errorf("MAP request %+v", first)
	}
	// Shutting down deletes the mapping: same nonce, lifetime 0.
	r.stop()
	del := g.waitRequest(func(q fakeRequest) bool { return q.version == 2 && q.op == 1 && q.lifetime == 0 })
	if del.nonce != first.nonce || del.internal != testPort {
		t.Errorf("delete %+v, want nonce %x port %d", del, first.nonce, testPort)
	}
	if s := r.m.Status(); mapped(s) {
		t.Errorf("after Run: %+v", s)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.maps) != 0 {
		t.Errorf("the gateway still maps %v", g.maps)
	}
}

func TestRenewAtHalfLifetime(t *testing.T) {
	g := newFakeGateway(t, true, false)
	g.set(func(g *fakeGateway) { g.maxLife = 2 }) // renewed after a second
	r := startMapper(t, g, time.Hour)
	r.wait(t, "mapped", mapped)
	first := g.waitRequest(func(q fakeRequest) bool { return q.op == 1 && q.lifetime > 0 })
	// The renewal repeats the nonce and asks for the port it has.
	again := g.waitRequest(func(q fakeRequest) bool { return q.op == 1 && q.lifetime > 0 })
	if again.nonce != first.nonce || again.suggested != testPort {
		t.Errorf("renewal %+v after %+v", again, first)
	}
}

func TestMapNATPMP(t *testing.T) {
	g := newFakeGateway(t, false, true)
	r := startMapper(t, g, time.Hour)
	s := r.wait(t, "mapped", mapped)
	if s.Protocol != NATPMP || s.External != netip.MustParseAddrPort("203.0.113.9:51820") || s.Lifetime != time.Hour {
		t.Errorf("status %+v", s)
	}
	r.stop()
	del := g.waitRequest(func(q fakeRequest) bool { return q.version == 0 && q.op == 1 && q.lifetime == 0 })
	if del.internal != testPort || del.suggested != 0 {
		t.Errorf("delete %+v: want port %d, suggested 0", del, testPort)
	}
}

// A gateway that restarts (new epoch, mappings lost, a new address) and says so: the
// mapping is made again at once and the new address reported.
func TestEpochResetRemaps(t *testing.T) {
	for _, pcp := range []bool{true, false} {
		name := map[bool]string{true: PCP, false: NATPMP}[pcp]
		t.Run(name, func(t *testing.T) {
			g := newFakeGateway(t, pcp, !pcp)
			r := startMapper(t, g, time.Hour)
			r.wait(t, "mapped", mapped)
			next := netip.MustParseAddr("203.0.113.77")
			g.reboot(next)
			g.announce(r.announce, pcp)
			s := r.wait(t, "mapped again", func(s Status) bool { return s.External.Addr() == next })
			if s.Protocol != name || s.External.Port() != testPort {
				t.Errorf("after the reboot: %+v", s)
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			if _, ok := g.maps[testPort]; !ok {
				t.Errorf("the gateway holds no mapping again: %v", g.maps)
			}
		})
	}
}

// Announcements from anyone but the gateway's server port change nothing.
func TestAnnouncementFromElsewhereIgnored(t *testing.T) {
	g := newFakeGateway(t, true, false)
	r := startMapper(t, g, time.Hour)
	r.wait(t, "mapped", mapped)
	r.m.mu.Lock()
	r.m.gateway = netip.MustParseAddr("127.0.0.1")
	r.m.mu.Unlock()
	other := newFakeGateway(t, true, false) // another port
	if r.m.isAnnouncement(netip.MustParseAddrPort(other.conn.LocalAddr().String()), other.pcpHeader(0, 0, 0)) {
		t.Error("an announcement from another port counts")
	}
	if !r.m.isAnnouncement(netip.MustParseAddrPort(g.conn.LocalAddr().String()), g.pcpHeader(0, 0, 0)) {
		t.Error("the gateway's announcement does not count")
	}
	if r.m.isAnnouncement(netip.MustParseAddrPort(g.conn.LocalAddr().String()), []byte{2, 0x80, 0}) {
		t.Error("a truncated announcement counts")
	}
}

func TestGatewayErrors(t *testing.T) {
	cases := []struct {
		name    string
		pcp     bool
		pmp     bool
		set     func(g *fakeGateway)
		wantErr string
	}{
		{"PCP refuses", true, true, func(g *fakeGateway) { g.pcpResult = 2 }, "NOT_AUTHORIZED"},
		{"PCP out of resources", true, false, func(g *fakeGateway) { g.pcpResult = 8 }, "NO_RESOURCES"},
		{"NAT-PMP has no external address", false, true, func(g *fakeGateway) { g.pmpResult = 3 }, "network failure"},
		{"NAT-PMP external address 0.0.0.0", false, true, func(g *fakeGateway) { g.ext = netip.IPv4Unspecified() }, "not usable"},
		{"PCP maps another port", true, false, func(g *fakeGateway) { g.wrongPort = true }, "not UDP port 51820"},
		{"garbage", true, true, func(g *fakeGateway) { g.garbage = []byte{2, 0x81, 0, 0, 1, 2, 3} }, "malformed"},
		{"NAT-PMP garbage", false, true, func(g *fakeGateway) { g.garbage = []byte{0, 0x80, 0, 0, 0, 0, 0, 1, 9} }, "malformed"},
		{"silence", false, false, nil, "no PCP or NAT-PMP answer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := newFakeGateway(t, c.pcp, c.pmp)
			if c.set != nil {
				g.set(c.set)
			}
			r := startMapper(t, g, time.Hour)
			s := r.wait(t, "an attempt", func(s Status) bool { return s.Tried })
			if mapped(s) || !strings.Contains(s.Err, c.wantErr) {
				t.Errorf("status %+v, want no mapping and an error saying %q", s, c.wantErr)
			}
		})
	}
}

// A port nothing listens on is refused at once, without waiting for the probe's timeout.
func TestRefusedPort(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	m, err := New(Config{Port: testPort, Logger: slog.New(slog.DiscardHandler), Announce: "-",
		Gateway:    func() (netip.Addr, error) { return netip.MustParseAddr("127.0.0.1"), nil },
		ServerPort: port, ProbeTimeout: time.Minute, Retry: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	s := run(t, m).wait(t, "an attempt", func(s Status) bool { return s.Tried })
	if !strings.Contains(s.Err, "refused") {
		t.Errorf("status %+v, want a refusal", s)
	}
}

func TestNoGateway(t *testing.T) {
	m, err := New(Config{Port: testPort, Logger: slog.New(slog.DiscardHandler), Announce: "-",
		Gateway: func() (netip.Addr, error) { return netip.Addr{}, net.UnknownNetworkError("no default route") }})
	if err != nil {
		t.Fatal(err)
	}
	s := run(t, m).wait(t, "an attempt", func(s Status) bool { return s.Tried })
	if mapped(s) || !strings.Contains(s.Err, "no default route") {
		t.Errorf("status %+v", s)
	}
}

func TestNewRejectsBadPort(t *testing.T) {
	for _, p := range []int{0, -1, 65536} {
		if _, err := New(Config{Port: p}); err == nil {
			t.Errorf("port %d accepted", p)
		}
	}
}
