package dnsserver

import (
	"testing"

	"github.com/miekg/dns"
)

// FuzzServeDNS feeds arbitrary packets to the handler: whatever parses must get either no
// answer (a response) or one well-formed answer that fits the transport.
func FuzzServeDNS(f *testing.F) {
	seed := func(build func(*dns.Msg)) {
		m := new(dns.Msg)
		build(m)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	seed(func(m *dns.Msg) { m.SetQuestion("laptop.acme."+zone, dns.TypeA) })
	seed(func(m *dns.Msg) { m.SetQuestion("LaPtOp.AcMe."+zone, dns.TypeANY) })
	seed(func(m *dns.Msg) { m.SetQuestion("ghost.acme."+zone, dns.TypeAAAA).SetEdns0(4096, true) })
	seed(func(m *dns.Msg) { m.SetQuestion(zone, dns.TypeNS).SetEdns0(512, false) })
	seed(func(m *dns.Msg) { m.SetQuestion(zone, dns.TypeSOA) })
	seed(func(m *dns.Msg) { m.SetQuestion("acme."+zone, dns.TypeTXT) })
	seed(func(m *dns.Msg) { m.SetQuestion("x.y.laptop.acme."+zone, dns.TypeA) })
	seed(func(m *dns.Msg) { m.SetQuestion("example.org.", dns.TypeA) })
	seed(func(m *dns.Msg) { m.SetQuestion(zone, dns.TypeAXFR) })
	seed(func(m *dns.Msg) { m.SetQuestion(zone, dns.TypeSOA); m.Opcode = dns.OpcodeNotify })
	seed(func(m *dns.Msg) { m.SetQuestion(zone, dns.TypeSOA).SetEdns0(1232, false); m.IsEdns0().SetVersion(3) })
	seed(func(m *dns.Msg) { m.Id = 1 })

	res := newFakeResolver()
	s, err := New(Config{Zone: zone, NSAddrs: testNSAddrs, Resolver: res})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, packet []byte, tcp bool) {
		q := new(dns.Msg)
		if q.Unpack(packet) != nil {
			return
		}
		w := &recorder{tcp: tcp}
		s.ServeDNS(w, q)
		if q.Response {
			if w.writes != 0 {
				t.Fatalf("answered a response")
			}
			return
		}
		if w.err != nil || w.writes != 1 {
			t.Fatalf("%d responses written (%v) for %v", w.writes, w.err, q)
		}
		if w.msg.Id != q.Id || !w.msg.Response || w.msg.RecursionAvailable {
			t.Fatalf("bad header in %v", w.msg)
		}
		if !tcp && len(w.wire) > ednsSize {
			t.Fatalf("UDP response of %d bytes", len(w.wire))
		}
	})
}
