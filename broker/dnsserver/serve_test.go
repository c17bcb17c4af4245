package dnsserver

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// serving starts s on fresh loopback sockets and returns the address; the server stops
// at the end of the test.
func serving(t *testing.T, s *Server) string {
	t.Helper()
	udp, tcp, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	if u, c := udp.LocalAddr().String(), tcp.Addr().String(); u != c {
		t.Fatalf("UDP on %s and TCP on %s: want one address", u, c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, udp, tcp) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve after cancel: %v", err)
		}
	})
	return tcp.Addr().String()
}

func query(t *testing.T, network, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	m, _, err := c.Exchange(q, addr)
	if err != nil {
		t.Fatalf("%s query %s: %v", network, name, err)
	}
	return m
}

func TestServeUDPAndTCP(t *testing.T) {
	res := newFakeResolver()
	s, _ := testServer(t, res, nil)
	addr := serving(t, s)
	for _, network := range []string{"udp", "tcp"} {
		m := query(t, network, addr, "LAPTOP.acme."+zone, dns.TypeA)
		if m.Rcode != dns.RcodeSuccess || !m.Authoritative || len(m.Answer) != 1 ||
			m.Answer[0].(*dns.A).A.String() != "100.64.0.1" || m.Answer[0].Header().Name != "LAPTOP.acme."+zone {
			t.Errorf("%s: %v", network, m)
		}
		if m := query(t, network, addr, "ghost.acme."+zone, dns.TypeA); m.Rcode != dns.RcodeNameError || len(m.Ns) != 1 {
			t.Errorf("%s unknown device: %v", network, m)
		}
		if m := query(t, network, addr, "example.org.", dns.TypeA); m.Rcode != dns.RcodeRefused {
			t.Errorf("%s out of zone: %v", network, m)
		}
	}
	// A change in the store shows on the next query over the wire too.
	res.set("acme", "laptop", "100.64.0.77")
	if m := query(t, "udp", addr, "laptop.acme."+zone, dns.TypeA); len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "100.64.0.77" {
		t.Errorf("after change: %v", m.Answer)
	}
}

func TestServeStopsOnCancelAndClosesSockets(t *testing.T) {
	s, _ := testServer(t, newFakeResolver(), nil)
	udp, tcp, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := tcp.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, udp, tcp) }()
	query(t, "tcp", addr, zone, dns.TypeSOA) // serving
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel = %v, want nil", err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("TCP socket still accepts after Serve returned")
	}
	// The UDP port is free again.
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Errorf("UDP socket not closed: %v", err)
	} else {
		u.Close()
	}
}

func TestServeReturnsSocketFailure(t *testing.T) {
	s, _ := testServer(t, newFakeResolver(), nil)
	udp, tcp, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := tcp.Addr().String()
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background(), udp, tcp) }()
	query(t, "udp", addr, zone, dns.TypeSOA) // serving
	udp.Close()                              // fails the UDP server's next read
	err = <-done
	if err == nil || !strings.Contains(err.Error(), "udp") {
		t.Fatalf("Serve = %v, want the UDP failure", err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("TCP still served after the UDP socket failed")
	}
}

func TestServeNeedsASocket(t *testing.T) {
	s, _ := testServer(t, newFakeResolver(), nil)
	if err := s.Serve(context.Background(), nil, nil); err == nil {
		t.Error("Serve with no sockets succeeded")
	}
}

func TestListenAndServeBindError(t *testing.T) {
	s, _ := testServer(t, newFakeResolver(), nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = s.ListenAndServe(context.Background(), l.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "dns listen on tcp") {
		t.Errorf("ListenAndServe on a taken port = %v, want a bind error", err)
	}
	if err := s.ListenAndServe(context.Background(), "no-port"); err == nil {
		t.Error("ListenAndServe without a port succeeded")
	}
}

func TestTCPConnectionCap(t *testing.T) {
	s, _ := testServer(t, newFakeResolver(), func(c *Config) { c.MaxTCPConns = 1 })
	addr := serving(t, s)

	// The first connection is served and stays open (idle), holding the only slot.
	first, err := dns.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	q := new(dns.Msg)
	q.SetQuestion(zone, dns.TypeSOA)
	if err := first.WriteMsg(q); err != nil {
		t.Fatal(err)
	}
	if _, err := first.ReadMsg(); err != nil {
		t.Fatalf("first connection: %v", err)
	}

	// The second is closed without an answer.
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetDeadline(time.Now().Add(5 * time.Second))
	co := &dns.Conn{Conn: second}
	co.WriteMsg(q) // may fail if the close already arrived
	if _, err := co.ReadMsg(); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Errorf("second connection over the cap: read %v, want it closed", err)
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

func TestLimitListenerFreesSlotOnClose(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &limitListener{Listener: inner, slots: make(chan struct{}, 1)}
	defer l.Close()
	addr := inner.Addr().String()

	c1, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	a1, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}

	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()

	// Over the cap: the listener closes it, so the client reads EOF.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("connection over the cap: read %v, want EOF", err)
	}

	// Closing the first frees its slot (closing twice frees it once).
	a1.Close()
	a1.Close()
	c3, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	a3, ok := <-accepted
	if !ok {
		t.Fatal("Accept failed after a slot was freed")
	}
	defer a3.Close()
	if a3.RemoteAddr().String() != c3.LocalAddr().String() {
		t.Errorf("accepted %v, want the third connection %v", a3.RemoteAddr(), c3.LocalAddr())
	}
	if len(l.slots) != 1 {
		t.Errorf("%d slots taken, want 1", len(l.slots))
	}
}

func TestInFlightLimitDropsExcess(t *testing.T) {
	res := newFakeResolver()
	res.entered = make(chan struct{})
	res.release = make(chan struct{})
	s, _ := testServer(t, res, func(c *Config) { c.MaxInFlight = 1 })
	h := s.limited(context.Background())

	q := new(dns.Msg)
	q.SetQuestion("laptop.acme."+zone, dns.TypeA)
	w1 := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeDNS(w1, q)
	}()
	<-res.entered // the first query holds the only slot

	w2 := &recorder{}
	h.ServeDNS(w2, q)
	if w2.writes != 0 {
		t.Errorf("query over the in-flight limit answered: %v", w2.msg)
	}

	close(res.release)
	<-done
	if w1.writes != 1 || len(w1.msg.Answer) != 1 {
		t.Errorf("first query: %d writes, %v", w1.writes, w1.msg)
	}
	// The slot is free again.
	res.entered = nil
	w3 := &recorder{}
	h.ServeDNS(w3, q)
	if w3.writes != 1 {
		t.Error("query after the slot was freed not answered")
	}
}
