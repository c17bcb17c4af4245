package dnsserver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/weftmesh/weft/internal/dnsname"
)

// ednsSize is the UDP payload size we advertise and the most we send over UDP: the
// DNS Flag Day 2020 value, which avoids IP fragmentation on common paths.
const ednsSize = 1232

// ServeDNS answers one query. It is the dns.Handler that Serve uses, and tests call it
// directly with a fake dns.ResponseWriter.
//
// ANY queries get a minimal answer as RFC 8482 suggests: one RRset that exists at the
// name (a device's address record, or the SOA at the apex), else NODATA.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	s.serve(context.Background(), w, r)
}

func (s *Server) serve(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) {
	if r.Response {
		return // answering a response could start a loop between two servers
	}
	m := s.answer(ctx, r)
	s.fit(w, r, m)
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("dns: sending response failed", "remote", w.RemoteAddr(), "err", err)
	}
}

// answer builds the response to r, without EDNS and without regard to size.
func (s *Server) answer(ctx context.Context, r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	switch {
	case r.Opcode != dns.OpcodeQuery:
		m.Rcode = dns.RcodeNotImplemented
		return m
	case len(r.Question) != 1:
		m.Question = nil
		m.Rcode = dns.RcodeFormatError
		return m
	}
	if opts := countOPT(r); opts > 1 {
		m.Rcode = dns.RcodeFormatError // RFC 6891 §6.1.1
		return m
	} else if opts == 1 && r.IsEdns0().Version() != 0 {
		m.Rcode = dns.RcodeBadVers
		return m
	}

	q := r.Question[0]
	name := strings.ToLower(dns.Fqdn(q.Name))
	labels := dns.SplitDomainName(name)
	depth := len(labels) - s.zoneLabels // labels below the apex
	if q.Qclass != dns.ClassINET || depth < 0 ||
		dns.Fqdn(strings.Join(labels[depth:], ".")) != s.zone {
		m.Rcode = dns.RcodeRefused // not ours: we are not a recursive resolver
		return m
	}
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		m.Rcode = dns.RcodeRefused // the data lives in the broker's store, not in a zone file
		return m
	}

	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	addrs, exists, err := s.lookup(lctx, name, labels[:depth])
	if err != nil {
		s.log.Error("dns lookup failed", "name", q.Name, "type", dns.TypeToString[q.Qtype], "err", err)
		m.Rcode = dns.RcodeServerFailure
		return m
	}
	m.Authoritative = true
	if !exists {
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{s.soa()}
		return m
	}

	// The owner name is echoed as asked, so resolvers using 0x20 case randomisation match it.
	switch {
	case depth == 0 && (q.Qtype == dns.TypeSOA || q.Qtype == dns.TypeANY):
		m.Answer = []dns.RR{s.soa()}
	case depth == 0 && q.Qtype == dns.TypeNS:
		for _, ns := range s.nsNames {
			m.Answer = append(m.Answer, &dns.NS{Hdr: hdr(q.Name, dns.TypeNS, infraTTL), Ns: ns})
			m.Extra = append(m.Extra, s.addrRRs(ns, s.glue[ns], 0, infraTTL)...)
		}
	default:
		ttl := s.ttl
		if _, isNS := s.glue[name]; isNS {
			ttl = infraTTL
		}
		m.Answer = s.addrRRs(q.Name, addrs, q.Qtype, ttl)
	}
	if len(m.Answer) == 0 {
		m.Ns = []dns.RR{s.soa()} // NODATA: the name exists but has no records of this type
	}
	return m
}

// lookup reports whether name, whose labels below the apex are rel, exists, and the
// addresses it has.
func (s *Server) lookup(ctx context.Context, name string, rel []string) (addrs []netip.Addr, exists bool, err error) {
	if a, ok := s.glue[name]; ok {
		return a, true, nil
	}
	for ns := range s.glue {
		if dns.IsSubDomain(name, ns) {
			return nil, true, nil // an empty non-terminal above an NS name (RFC 8020)
		}
	}
	for _, l := range rel {
		if dnsname.ValidLabel(l) != nil {
			return nil, false, nil // no account or device can have this name
		}
	}
	switch len(rel) {
	case 0:
		return nil, true, nil
	case 1:
		ok, err := s.resolver.AccountExists(ctx, rel[0])
		return nil, ok, err
	case 2:
		a, ok, err := s.resolver.LookupDevice(ctx, rel[1], rel[0])
		if err != nil || !ok {
			return nil, false, err
		}
		if a = a.Unmap(); !a.IsValid() {
			return nil, false, errInvalidAddr
		}
		return []netip.Addr{a}, true, nil
	default:
		return nil, false, nil // nothing lives below a device
	}
}

var errInvalidAddr = errors.New("resolver returned a device without a valid address")

// addrRRs returns the A or AAAA records of owner among addrs for qtype; for qtype 0 (glue)
// all of them, and for ANY those of the first address's family, one RRset.
func (s *Server) addrRRs(owner string, addrs []netip.Addr, qtype uint16, ttl uint32) []dns.RR {
	if qtype == dns.TypeANY && len(addrs) > 0 {
		qtype = dns.TypeA
		if addrs[0].Is6() {
			qtype = dns.TypeAAAA
		}
	}
	var rrs []dns.RR
	for _, a := range addrs {
		switch {
		case a.Is4() && (qtype == dns.TypeA || qtype == 0):
			rrs = append(rrs, &dns.A{Hdr: hdr(owner, dns.TypeA, ttl), A: net.IP(a.AsSlice())})
		case a.Is6() && (qtype == dns.TypeAAAA || qtype == 0):
			rrs = append(rrs, &dns.AAAA{Hdr: hdr(owner, dns.TypeAAAA, ttl), AAAA: net.IP(a.AsSlice())})
		}
	}
	return rrs
}

// soa is the zone's SOA record. Its serial is the current Unix time: answers are computed
// live from the store, so the zone's data can have changed at any moment, and a
// clock-based serial never goes backwards for it. Its TTL and MINIMUM are the negative
// caching TTL (RFC 2308 §5).
func (s *Server) soa() *dns.SOA {
	return &dns.SOA{
		Hdr:     hdr(s.zone, dns.TypeSOA, s.negTTL),
		Ns:      s.nsNames[0],
		Mbox:    s.mbox,
		Serial:  uint32(s.now().Unix()),
		Refresh: soaRefresh,
		Retry:   soaRetry,
		Expire:  soaExpire,
		Minttl:  s.negTTL,
	}
}

func hdr(owner string, rrtype uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: owner, Rrtype: rrtype, Class: dns.ClassINET, Ttl: ttl}
}

// fit adds the OPT record when the query had one and truncates a UDP response to the
// size the client can take.
func (s *Server) fit(w dns.ResponseWriter, r, m *dns.Msg) {
	size := dns.MinMsgSize
	if opt := r.IsEdns0(); opt != nil {
		// RFC 3225 §3: the DO bit is copied; we sign nothing, so it changes no answer.
		m.SetEdns0(ednsSize, opt.Do())
		size = min(max(int(opt.UDPSize()), dns.MinMsgSize), ednsSize)
	}
	if _, tcp := w.RemoteAddr().(*net.TCPAddr); tcp {
		m.Compress = true
		return
	}
	m.Truncate(size)
}

func countOPT(r *dns.Msg) int {
	n := 0
	for _, rr := range r.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			n++
		}
	}
	return n
}
