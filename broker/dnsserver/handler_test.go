package dnsserver

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, rr.String())
	}
	return out
}

// wantNegSOA checks that a negative answer carries the zone's SOA, with the negative
// caching TTL, as its only authority record.
func wantNegSOA(t *testing.T, m *dns.Msg) {
	t.Helper()
	if len(m.Ns) != 1 {
		t.Fatalf("authority %v, want exactly the SOA", m.Ns)
	}
	soa, ok := m.Ns[0].(*dns.SOA)
	if !ok {
		t.Fatalf("authority %v, want the SOA", m.Ns[0])
	}
	if soa.Hdr.Name != zone || soa.Hdr.Ttl != 30 || soa.Minttl != 30 {
		t.Errorf("SOA %v: want owner %s, TTL 30 and MINIMUM 30", soa, zone)
	}
}

func TestAnswers(t *testing.T) {
	const (
		soaRR = "weft.example.com.\t30\tIN\tSOA\tns1.weft.example.com. hostmaster.weft.example.com. 1750000000 3600 600 1209600 30"
	)
	cases := []struct {
		name   string
		qtype  uint16
		rcode  int
		answer []string // exact, in order; nil means an empty answer section
		extra  []string
	}{
		// Devices.
		{"laptop.acme.weft.example.com.", dns.TypeA, dns.RcodeSuccess,
			[]string{"laptop.acme.weft.example.com.\t60\tIN\tA\t100.64.0.1"}, nil},
		{"nas.acme.weft.example.com.", dns.TypeA, dns.RcodeSuccess,
			[]string{"nas.acme.weft.example.com.\t60\tIN\tA\t100.64.0.2"}, nil},
		// 0x20: matched case-insensitively, echoed as asked.
		{"LaPtOp.AcMe.WeFt.ExAmPlE.cOm.", dns.TypeA, dns.RcodeSuccess,
			[]string{"LaPtOp.AcMe.WeFt.ExAmPlE.cOm.\t60\tIN\tA\t100.64.0.1"}, nil},
		{"laptop.acme.weft.example.com.", dns.TypeAAAA, dns.RcodeSuccess, nil, nil},
		{"laptop.acme.weft.example.com.", dns.TypeMX, dns.RcodeSuccess, nil, nil},
		{"laptop.acme.weft.example.com.", dns.TypeTXT, dns.RcodeSuccess, nil, nil},
		{"laptop.acme.weft.example.com.", dns.TypeNS, dns.RcodeSuccess, nil, nil},
		{"laptop.acme.weft.example.com.", dns.TypeANY, dns.RcodeSuccess,
			[]string{"laptop.acme.weft.example.com.\t60\tIN\tA\t100.64.0.1"}, nil},
		{"v6box.acme.weft.example.com.", dns.TypeAAAA, dns.RcodeSuccess,
			[]string{"v6box.acme.weft.example.com.\t60\tIN\tAAAA\tfd7a:115c:a1e0::5"}, nil},
		{"v6box.acme.weft.example.com.", dns.TypeA, dns.RcodeSuccess, nil, nil},
		{"ghost.acme.weft.example.com.", dns.TypeA, dns.RcodeNameError, nil, nil},
		{"ghost.acme.weft.example.com.", dns.TypeAAAA, dns.RcodeNameError, nil, nil},
		{"laptop.nobody.weft.example.com.", dns.TypeA, dns.RcodeNameError, nil, nil},
		{"laptop.empty.weft.example.com.", dns.TypeA, dns.RcodeNameError, nil, nil},
		{"www.laptop.acme.weft.example.com.", dns.TypeA, dns.RcodeNameError, nil, nil},
		{"a.b.laptop.acme.weft.example.com.", dns.TypeA, dns.RcodeNameError, nil, nil},
		{"bad_name.acme.weft.example.com.", dns.TypeA, dns.RcodeNameError, nil, nil},
		{"-x.acme.weft.example.com.", dns.TypeA, dns.RcodeNameError, nil, nil},

		// Accounts.
		{"acme.weft.example.com.", dns.TypeA, dns.RcodeSuccess, nil, nil},
		{"ACME.weft.example.com.", dns.TypeTXT, dns.RcodeSuccess, nil, nil},
		{"empty.weft.example.com.", dns.TypeA, dns.RcodeSuccess, nil, nil},
		{"nobody.weft.example.com.", dns.TypeA, dns.RcodeNameError, nil, nil},
		{"nobody.weft.example.com.", dns.TypeANY, dns.RcodeNameError, nil, nil},

		// Apex and name servers.
		{"weft.example.com.", dns.TypeSOA, dns.RcodeSuccess, []string{soaRR}, nil},
		{"WEFT.example.com.", dns.TypeANY, dns.RcodeSuccess, []string{soaRR}, nil},
		{"weft.example.com.", dns.TypeNS, dns.RcodeSuccess,
			[]string{"weft.example.com.\t3600\tIN\tNS\tns1.weft.example.com."},
			[]string{"ns1.weft.example.com.\t3600\tIN\tA\t192.0.2.53", "ns1.weft.example.com.\t3600\tIN\tAAAA\t2001:db8::53"}},
		{"weft.example.com.", dns.TypeA, dns.RcodeSuccess, nil, nil},
		{"weft.example.com.", dns.TypeMX, dns.RcodeSuccess, nil, nil},
		{"ns1.weft.example.com.", dns.TypeA, dns.RcodeSuccess,
			[]string{"ns1.weft.example.com.\t3600\tIN\tA\t192.0.2.53"}, nil},
		{"NS1.weft.example.com.", dns.TypeAAAA, dns.RcodeSuccess,
			[]string{"NS1.weft.example.com.\t3600\tIN\tAAAA\t2001:db8::53"}, nil},
		{"ns1.weft.example.com.", dns.TypeMX, dns.RcodeSuccess, nil, nil},
	}
	res := newFakeResolver()
	s, _ := testServer(t, res, nil)
	for _, c := range cases {
		m := ask(t, s, c.name, c.qtype)
		what := c.name + " " + dns.TypeToString[c.qtype]
		if m.Rcode != c.rcode {
			t.Errorf("%s: rcode %s, want %s", what, dns.RcodeToString[m.Rcode], dns.RcodeToString[c.rcode])
			continue
		}
		if !m.Authoritative {
			t.Errorf("%s: AA not set", what)
		}
		if len(m.Question) != 1 || m.Question[0].Name != c.name || m.Question[0].Qtype != c.qtype {
			t.Errorf("%s: question echoed as %v", what, m.Question)
		}
		if got := rrStrings(m.Answer); !slices.Equal(got, c.answer) {
			t.Errorf("%s: answer\n%q\nwant\n%q", what, got, c.answer)
		}
		if got := rrStrings(m.Extra); !slices.Equal(got, c.extra) {
			t.Errorf("%s: additional\n%q\nwant\n%q", what, got, c.extra)
		}
		if len(c.answer) == 0 {
			wantNegSOA(t, m)
		} else if len(m.Ns) != 0 {
			t.Errorf("%s: authority %v in a positive answer", what, m.Ns)
		}
	}
}

func TestInvalidLabelsDoNotReachResolver(t *testing.T) {
	res := newFakeResolver()
	s, _ := testServer(t, res, nil)
	for _, name := range []string{
		"bad_name.acme.weft.example.com.",
		"laptop.bad_acct.weft.example.com.",
		`a\.b.weft.example.com.`,
		"x.y.z.weft.example.com.",
	} {
		if m := ask(t, s, name, dns.TypeA); m.Rcode != dns.RcodeNameError {
			t.Errorf("%s: rcode %s, want NXDOMAIN", name, dns.RcodeToString[m.Rcode])
		}
	}
	if n := res.callCount(); n != 0 {
		t.Errorf("resolver called %d times for names no device can have", n)
	}
}

func TestOutOfZoneRefused(t *testing.T) {
	s, _ := testServer(t, newFakeResolver(), nil)
	for _, name := range []string{
		".",
		"com.",
		"example.com.",
		"other.example.com.",
		"laptop.acme.weft-example.com.",
		"weft.example.com.evil.",
		"xweft.example.com.",
		`laptop.acme\.weft.example.com.`, // one label "acme.weft", so not under the zone
		"google.com.",
	} {
		m := ask(t, s, name, dns.TypeA)
		if m.Rcode != dns.RcodeRefused {
			t.Errorf("%s: rcode %s, want REFUSED", name, dns.RcodeToString[m.Rcode])
		}
		if m.Authoritative || len(m.Answer)+len(m.Ns)+len(m.Extra) != 0 {
			t.Errorf("%s: AA=%v, sections %v %v %v; want AA=0 and empty sections", name, m.Authoritative, m.Answer, m.Ns, m.Extra)
		}
	}
}

func TestRefusedRequests(t *testing.T) {
	s, _ := testServer(t, newFakeResolver(), nil)
	// Zone transfers: the data is in the store, not in a zone.
	for _, qt := range []uint16{dns.TypeAXFR, dns.TypeIXFR} {
		q := new(dns.Msg)
		q.SetQuestion(zone, qt)
		if m := exchange(t, s, q, true); m.Rcode != dns.RcodeRefused {
			t.Errorf("%s: rcode %s, want REFUSED", dns.TypeToString[qt], dns.RcodeToString[m.Rcode])
		}
	}
	// Other classes, such as CHAOS version.bind.
	q := new(dns.Msg)
	q.SetQuestion("laptop.acme."+zone, dns.TypeA)
	q.Question[0].Qclass = dns.ClassCHAOS
	if m := exchange(t, s, q, false); m.Rcode != dns.RcodeRefused {
		t.Errorf("class CH: rcode %s, want REFUSED", dns.RcodeToString[m.Rcode])
	}
}

func TestMalformedRequests(t *testing.T) {
	s, _ := testServer(t, newFakeResolver(), nil)

	none := new(dns.Msg)
	none.Id = 7
	two := new(dns.Msg)
	two.SetQuestion("laptop.acme."+zone, dns.TypeA)
	two.Question = append(two.Question, dns.Question{Name: "nas.acme." + zone, Qtype: dns.TypeA, Qclass: dns.ClassINET})
	twoOPT := new(dns.Msg)
	twoOPT.SetQuestion("laptop.acme."+zone, dns.TypeA)
	twoOPT.SetEdns0(1232, false)
	twoOPT.SetEdns0(1232, false)
	for name, q := range map[string]*dns.Msg{"no question": none, "two questions": two, "two OPT": twoOPT} {
		m := exchange(t, s, q, false)
		if m.Rcode != dns.RcodeFormatError || m.Authoritative || len(m.Answer) != 0 {
			t.Errorf("%s: rcode %s AA=%v answer %v; want FORMERR, AA=0, no answer",
				name, dns.RcodeToString[m.Rcode], m.Authoritative, m.Answer)
		}
	}

	for _, op := range []int{dns.OpcodeIQuery, dns.OpcodeStatus, dns.OpcodeNotify, dns.OpcodeUpdate} {
		q := new(dns.Msg)
		q.SetQuestion(zone, dns.TypeSOA)
		q.Opcode = op
		m := exchange(t, s, q, false)
		if m.Rcode != dns.RcodeNotImplemented || m.Opcode != op || m.Authoritative {
			t.Errorf("opcode %s: rcode %s opcode %s AA=%v; want NOTIMP echoing the opcode",
				dns.OpcodeToString[op], dns.RcodeToString[m.Rcode], dns.OpcodeToString[m.Opcode], m.Authoritative)
		}
	}

	// A response is never answered: two servers could otherwise bounce packets forever.
	resp := new(dns.Msg)
	resp.SetQuestion("laptop.acme."+zone, dns.TypeA)
	resp.Response = true
	w := &recorder{}
	s.ServeDNS(w, resp)
	if w.writes != 0 {
		t.Errorf("answered a response: %v", w.msg)
	}
}

func TestHeaderBits(t *testing.T) {
	s, _ := testServer(t, newFakeResolver(), nil)
	q := new(dns.Msg)
	q.SetQuestion("laptop.acme."+zone, dns.TypeA)
	q.RecursionDesired = true
	q.CheckingDisabled = true
	m := exchange(t, s, q, false)
	if !m.RecursionDesired || !m.CheckingDisabled || m.RecursionAvailable || !m.Authoritative || m.Truncated {
		t.Errorf("RD=%v CD=%v RA=%v AA=%v TC=%v; want RD and CD copied, RA=0, AA=1, TC=0",
			m.RecursionDesired, m.CheckingDisabled, m.RecursionAvailable, m.Authoritative, m.Truncated)
	}
	q.RecursionDesired = false
	if m := exchange(t, s, q, false); m.RecursionDesired {
		t.Error("RD set in the answer to a query without it")
	}
}

func TestEDNS(t *testing.T) {
	s, _ := testServer(t, newFakeResolver(), nil)

	plain := ask(t, s, "laptop.acme."+zone, dns.TypeA)
	if plain.IsEdns0() != nil {
		t.Error("OPT in the answer to a query without EDNS")
	}

	for _, do := range []bool{false, true} {
		q := new(dns.Msg)
		q.SetQuestion("laptop.acme."+zone, dns.TypeA)
		q.SetEdns0(4096, do)
		m := exchange(t, s, q, false)
		opt := m.IsEdns0()
		if opt == nil {
			t.Fatalf("do=%v: no OPT in the answer to an EDNS query", do)
		}
		if opt.UDPSize() != 1232 || opt.Version() != 0 || opt.Do() != do {
			t.Errorf("OPT size %d version %d DO %v; want 1232, 0, DO copied (%v)", opt.UDPSize(), opt.Version(), opt.Do(), do)
		}
		if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
			t.Errorf("EDNS query answered %s %v", dns.RcodeToString[m.Rcode], m.Answer)
		}
	}

	// An unknown EDNS version gets BADVERS (extended rcode 16) with our OPT.
	q := new(dns.Msg)
	q.SetQuestion("laptop.acme."+zone, dns.TypeA)
	q.SetEdns0(1232, false)
	q.IsEdns0().SetVersion(1)
	m := exchange(t, s, q, false)
	if m.Rcode != dns.RcodeBadVers || m.IsEdns0() == nil || len(m.Answer) != 0 {
		t.Errorf("EDNS version 1: rcode %s OPT %v answer %v; want BADVERS with OPT and no answer",
			dns.RcodeToString[m.Rcode], m.IsEdns0(), m.Answer)
	}
}

func TestTruncation(t *testing.T) {
	// Twenty in-zone name servers with A and AAAA glue make an NS answer far over 512 bytes.
	var names []string
	for i := range 20 {
		names = append(names, "ns"+strings.Repeat("x", 20)+string(rune('a'+i))+"."+zone)
	}
	s, _ := testServer(t, newFakeResolver(), func(c *Config) { c.NSNames = names })

	q := new(dns.Msg)
	q.SetQuestion(zone, dns.TypeNS)
	w := &recorder{}
	s.ServeDNS(w, q)
	if len(w.wire) > 512 || !w.msg.Truncated {
		t.Errorf("UDP without EDNS: %d bytes, TC=%v; want at most 512 and TC", len(w.wire), w.msg.Truncated)
	}

	q.SetEdns0(4096, false)
	w = &recorder{}
	s.ServeDNS(w, q)
	if len(w.wire) > 1232 || !w.msg.Truncated || w.msg.IsEdns0() == nil {
		t.Errorf("UDP with EDNS 4096: %d bytes, TC=%v, OPT %v; want at most 1232, TC and OPT", len(w.wire), w.msg.Truncated, w.msg.IsEdns0())
	}

	// Over TCP the full answer is sent.
	w = &recorder{tcp: true}
	s.ServeDNS(w, q)
	if w.msg.Truncated || len(w.msg.Answer) != 20 || len(w.msg.Extra) != 41 {
		t.Errorf("TCP: TC=%v, %d NS, %d additional; want TC=0, 20 NS, 40 glue + OPT",
			w.msg.Truncated, len(w.msg.Answer), len(w.msg.Extra))
	}

	// A small answer is never truncated.
	if m := ask(t, s, "laptop.acme."+zone, dns.TypeA); m.Truncated || len(m.Answer) != 1 {
		t.Errorf("small UDP answer: TC=%v answer %v", m.Truncated, m.Answer)
	}
}

func TestResolverErrorIsServfail(t *testing.T) {
	res := newFakeResolver()
	res.err = errors.New("database is locked")
	s, logs := testServer(t, res, nil)
	for _, name := range []string{"laptop.acme." + zone, "acme." + zone} {
		m := ask(t, s, name, dns.TypeA)
		if m.Rcode != dns.RcodeServerFailure || m.Authoritative || len(m.Answer)+len(m.Ns) != 0 {
			t.Errorf("%s: rcode %s AA=%v; want SERVFAIL, AA=0, nothing else", name, dns.RcodeToString[m.Rcode], m.Authoritative)
		}
	}
	if !strings.Contains(logs.String(), "database is locked") || !strings.Contains(logs.String(), "laptop.acme."+zone) {
		t.Errorf("resolver error not logged with the name; log:\n%s", logs)
	}
	// Names answered without the resolver are unaffected.
	if m := ask(t, s, zone, dns.TypeSOA); m.Rcode != dns.RcodeSuccess {
		t.Errorf("SOA during resolver outage: %s", dns.RcodeToString[m.Rcode])
	}
}

func TestResolverInvalidAddressIsServfail(t *testing.T) {
	res := newFakeResolver()
	res.accounts["acme"]["broken"] = netip.Addr{}
	s, _ := testServer(t, res, nil)
	if m := ask(t, s, "broken.acme."+zone, dns.TypeA); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("invalid address from resolver: rcode %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
}

// TestChangesShowAtOnce: the server keeps nothing between queries.
func TestChangesShowAtOnce(t *testing.T) {
	res := newFakeResolver()
	s, _ := testServer(t, res, nil)
	answer := func(name string) (int, string) {
		m := ask(t, s, name+"."+zone, dns.TypeA)
		if len(m.Answer) == 1 {
			return m.Rcode, m.Answer[0].(*dns.A).A.String()
		}
		return m.Rcode, ""
	}
	check := func(step, name string, wantRcode int, wantAddr string) {
		t.Helper()
		if rc, addr := answer(name); rc != wantRcode || addr != wantAddr {
			t.Errorf("%s: %s = %s %q, want %s %q", step, name, dns.RcodeToString[rc], addr, dns.RcodeToString[wantRcode], wantAddr)
		}
	}

	check("before", "phone.acme", dns.RcodeNameError, "")
	res.set("acme", "phone", "100.64.0.9")
	check("added", "phone.acme", dns.RcodeSuccess, "100.64.0.9")

	// Rename: the old name goes, the new one answers with the same address.
	res.set("acme", "phone", "")
	res.set("acme", "mobile", "100.64.0.9")
	check("renamed (old)", "phone.acme", dns.RcodeNameError, "")
	check("renamed (new)", "mobile.acme", dns.RcodeSuccess, "100.64.0.9")

	res.set("acme", "mobile", "100.64.0.10")
	check("readdressed", "mobile.acme", dns.RcodeSuccess, "100.64.0.10")

	res.set("acme", "mobile", "")
	check("removed", "mobile.acme", dns.RcodeNameError, "")

	check("account before", "newco", dns.RcodeNameError, "")
	res.set("newco", "box", "100.64.1.1")
	check("account created", "newco", dns.RcodeSuccess, "")
	check("device in new account", "box.newco", dns.RcodeSuccess, "100.64.1.1")
}

func TestSOASerialFollowsClock(t *testing.T) {
	s, _ := testServer(t, newFakeResolver(), nil)
	serial := func() uint32 {
		m := ask(t, s, zone, dns.TypeSOA)
		return m.Answer[0].(*dns.SOA).Serial
	}
	first := serial()
	s.now = func() time.Time { return time.Unix(1_750_000_100, 0) }
	if second := serial(); second != first+100 {
		t.Errorf("serial %d after 100 s, want %d", second, first+100)
	}
}

func TestOutOfZoneNSHasNoGlue(t *testing.T) {
	s, _ := testServer(t, newFakeResolver(), func(c *Config) {
		c.NSNames = []string{"ns.provider.net", "ns1.weft.example.com"}
		c.NSAddrs = []netip.Addr{netip.MustParseAddr("::ffff:192.0.2.53")} // 4in6 is unmapped
		c.TTL = 15 * time.Second
		c.NegativeTTL = 10 * time.Second
		c.Mbox = "dns-admin.example.org"
	})
	m := ask(t, s, zone, dns.TypeNS)
	wantAns := []string{"weft.example.com.\t3600\tIN\tNS\tns.provider.net.", "weft.example.com.\t3600\tIN\tNS\tns1.weft.example.com."}
	wantExtra := []string{"ns1.weft.example.com.\t3600\tIN\tA\t192.0.2.53"}
	if got := rrStrings(m.Answer); !slices.Equal(got, wantAns) {
		t.Errorf("NS answer %q, want %q", got, wantAns)
	}
	if got := rrStrings(m.Extra); !slices.Equal(got, wantExtra) {
		t.Errorf("NS additional %q, want %q", got, wantExtra)
	}
	soa := ask(t, s, zone, dns.TypeSOA).Answer[0].(*dns.SOA)
	if soa.Ns != "ns.provider.net." || soa.Mbox != "dns-admin.example.org." || soa.Hdr.Ttl != 10 || soa.Minttl != 10 {
		t.Errorf("SOA %v: want MNAME the first NS, the configured mailbox and TTLs 10", soa)
	}
	if a := ask(t, s, "laptop.acme."+zone, dns.TypeA); len(a.Answer) != 1 || a.Answer[0].Header().Ttl != 15 {
		t.Errorf("device answer %v, want TTL 15", a.Answer)
	}
	if neg := ask(t, s, "ghost.acme."+zone, dns.TypeA); len(neg.Ns) != 1 || neg.Ns[0].Header().Ttl != 10 {
		t.Errorf("negative answer authority %v, want SOA with TTL 10", neg.Ns)
	}
}

func TestDeepNSNameMakesEmptyNonTerminal(t *testing.T) {
	res := newFakeResolver()
	s, _ := testServer(t, res, func(c *Config) { c.NSNames = []string{"a.dns.weft.example.com"} })
	// dns.ZONE is not an account, but a name exists below it: NODATA, not NXDOMAIN.
	m := ask(t, s, "dns."+zone, dns.TypeA)
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 {
		t.Errorf("dns.%s: %s %v, want NODATA", zone, dns.RcodeToString[m.Rcode], m.Answer)
	}
	wantNegSOA(t, m)
	if m := ask(t, s, "a.dns."+zone, dns.TypeA); len(m.Answer) != 1 {
		t.Errorf("a.dns.%s A: %v, want the glue address", zone, m.Answer)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	res := newFakeResolver()
	addrs := []netip.Addr{netip.MustParseAddr("192.0.2.53")}
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no zone", Config{NSAddrs: addrs, Resolver: res}, "empty"},
		{"root zone", Config{Zone: ".", NSAddrs: addrs, Resolver: res}, "root"},
		{"bad zone", Config{Zone: "a..b", NSAddrs: addrs, Resolver: res}, "not a valid domain name"},
		{"no resolver", Config{Zone: zone, NSAddrs: addrs}, "no resolver"},
		{"in-zone NS without address", Config{Zone: zone, Resolver: res}, "needs NS addresses"},
		{"NS at apex", Config{Zone: zone, NSNames: []string{zone}, NSAddrs: addrs, Resolver: res}, "apex"},
		{"bad NS name", Config{Zone: zone, NSNames: []string{"a..b"}, NSAddrs: addrs, Resolver: res}, "not a valid domain name"},
		{"unspecified NS address", Config{Zone: zone, NSAddrs: []netip.Addr{netip.IPv4Unspecified()}, Resolver: res}, "not a usable address"},
		{"zero NS address", Config{Zone: zone, NSAddrs: []netip.Addr{{}}, Resolver: res}, "not a usable address"},
		{"sub-second TTL", Config{Zone: zone, NSAddrs: addrs, Resolver: res, TTL: time.Millisecond}, "TTL"},
		{"negative TTL", Config{Zone: zone, NSAddrs: addrs, Resolver: res, NegativeTTL: -time.Second}, "negative TTL"},
		{"negative limit", Config{Zone: zone, NSAddrs: addrs, Resolver: res, MaxTCPConns: -1}, "negative"},
	}
	for _, c := range cases {
		_, err := New(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: New = %v, want an error mentioning %q", c.name, err, c.want)
		}
	}
	// An out-of-zone NS name needs no address.
	if _, err := New(Config{Zone: zone, NSNames: []string{"ns.provider.net"}, Resolver: res}); err != nil {
		t.Errorf("out-of-zone NS without addresses: %v", err)
	}
}
