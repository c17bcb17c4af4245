package portmap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"
)

// errVersion: the gateway answered that it does not speak the protocol (version) asked.
var errVersion = errors.New("the gateway does not speak this protocol")

// session is the exchange with one gateway from one local address: the protocol it
// speaks, the mapping's nonce and what the gateway last granted. Only Run's goroutine
// uses it.
type session struct {
	gw       netip.Addr
	local    netip.Addr
	conn     *net.UDPConn // connected to the gateway's server port
	port     uint16       // the internal port to map
	lifetime uint32       // seconds asked for
	log      *slog.Logger

	proto    string     // PCP, NATPMP, or "" before a probe found out
	nonce    nonce      // PCP: this mapping's, for its whole life with this gateway
	ext      netip.Addr // NAT-PMP: the gateway's external address
	epoch    epochClock
	cur      Mapping // the mapping granted; zero when none
	expires  time.Time
	failures int // renewals failed in a row
}

func (s *session) close() { s.conn.Close() }

// exchange sends reqs, resending them at a doubling interval, and hands every datagram
// that comes back to handle until handle reports done (with handle's error) or ctx ends.
// A datagram handle rejects with an error but not done (malformed) is ignored, and named
// if no answer comes. A refused port (ICMP) ends it at once: nothing listens there.
func (s *session) exchange(ctx context.Context, reqs [][]byte, handle func(pkt []byte) (done bool, err error)) error {
	stop := context.AfterFunc(ctx, func() { s.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, pcpMaxLen+4)
	var bad error
	for wait := firstResend; ; wait *= 2 {
		for _, r := range reqs {
			if _, err := s.conn.Write(r); err != nil {
				return fmt.Errorf("portmap: send to gateway %s: %w", s.gw, err)
			}
		}
		if ctx.Err() == nil {
			s.conn.SetReadDeadline(time.Now().Add(wait))
		}
		for {
			n, err := s.conn.Read(buf)
			switch {
			case ctx.Err() != nil && bad != nil:
				return fmt.Errorf("portmap: no valid answer from gateway %s: %w", s.gw, bad)
			case ctx.Err() != nil:
				return fmt.Errorf("portmap: no answer from gateway %s: %w", s.gw, ctx.Err())
			case errors.Is(err, os.ErrDeadlineExceeded):
			case err != nil:
				return fmt.Errorf("portmap: gateway %s port %d: %w", s.gw, s.conn.RemoteAddr().(*net.UDPAddr).Port, err)
			case n == 0:
				continue
			default:
				done, err := handle(buf[:n])
				if done {
					return err
				}
				if err != nil {
					bad = err
				}
				continue
			}
			break // resend
		}
	}
}

// probe finds out which protocol the gateway speaks, asking for the mapping with PCP and
// for the external address with NAT-PMP at the same time (neither request of NAT-PMP's
// makes anything), and returns the mapping made. It takes timeout at most.
func (s *session) probe(ctx context.Context, timeout time.Duration) (Mapping, error) {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var (
		mp     Mapping
		pcpErr error
		pcpNo  bool // a NAT-PMP-only gateway answered the PCP request
		pmpErr error
		pmpExt netip.Addr
		pmpEp  uint32
	)
	pcpReq := pcpMapRequest(s.local, s.nonce, s.port, netip.AddrPortFrom(netip.Addr{}, s.port), s.lifetime)
	err := s.exchange(pctx, [][]byte{pcpReq, pmpAddrRequest()}, func(pkt []byte) (bool, error) {
		switch pkt[0] {
		case pcpVersion:
			r, err := parsePCP(pkt)
			switch {
			case errors.Is(err, errMalformed):
				return false, err
			case r.op != pcpOpMap:
			case err != nil && r.result == pcpUnsuppVersion:
				pcpNo = true
			case err != nil:
				pcpErr = err
				return true, nil
			case r.nonce == s.nonce:
				mp, pcpErr = s.pcpMapping(r, time.Now())
				return true, nil
			}
		case pmpVersion:
			r, err := parsePMP(pkt)
			switch {
			case errors.Is(err, errMalformed):
				return false, err
			case r.op == pcpOpMap && r.result == 1:
				// RFC 6887 §9: a NAT-PMP server answers a PCP request with its own
				// "unsupported version".
				pcpNo = true
			case r.op != pmpOpAddr:
			case err != nil:
				pmpErr = err
			case !usableExternal(r.external):
				pmpErr = fmt.Errorf("NAT-PMP: the gateway's external address %s is not usable", r.external)
			default:
				pmpExt, pmpEp = r.external, r.epoch
			}
		}
		return pcpNo && (pmpExt.IsValid() || pmpErr != nil), nil
	})
	switch {
	case mp.External.IsValid():
		s.proto = PCP
		return mp, nil
	case pcpErr != nil:
		return Mapping{}, pcpErr
	case pmpExt.IsValid():
		s.proto, s.ext = NATPMP, pmpExt
		s.epoch.observe(pmpEp, time.Now())
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		return s.renew(rctx)
	case pmpErr != nil:
		return Mapping{}, pmpErr
	}
	return Mapping{}, fmt.Errorf("no PCP or NAT-PMP answer: %w", err)
}

// renew asks the gateway for the mapping again, with the protocol probe found: the same
// request makes it anew after the gateway lost it.
func (s *session) renew(ctx context.Context) (Mapping, error) {
	if s.proto == PCP {
		return s.renewPCP(ctx)
	}
	return s.renewPMP(ctx)
}

func (s *session) renewPCP(ctx context.Context) (Mapping, error) {
	want := netip.AddrPortFrom(netip.Addr{}, s.port)
	if s.cur.External.IsValid() {
		want = s.cur.External
	}
	req := pcpMapRequest(s.local, s.nonce, s.port, want, s.lifetime)
	var mp Mapping
	err := s.exchange(ctx, [][]byte{req}, func(pkt []byte) (bool, error) {
		if pkt[0] == pmpVersion {
			if r, err := parsePMP(pkt); !errors.Is(err, errMalformed) && r.op == pcpOpMap && r.result == 1 {
				return true, fmt.Errorf("PCP: %w", errVersion)
			}
			return false, nil
		}
		r, err := parsePCP(pkt)
		switch {
		case errors.Is(err, errMalformed):
			return false, err
		case r.op != pcpOpMap:
			return false, nil
		case err != nil && r.result == pcpUnsuppVersion:
			return true, fmt.Errorf("%w: %w", err, errVersion)
		case err != nil:
			return true, err
		case r.nonce != s.nonce:
			return false, nil // not ours
		}
		mp, err = s.pcpMapping(r, time.Now())
		return true, err
	})
	return mp, err
}

// pcpMapping checks a successful MAP response for our request and makes it a Mapping.
func (s *session) pcpMapping(r pcpResponse, now time.Time) (Mapping, error) {
	switch {
	case r.proto != protoUDP || r.internal != s.port:
		return Mapping{}, fmt.Errorf("PCP: the response maps protocol %d port %d, not UDP port %d", r.proto, r.internal, s.port)
	case !usableExternal(r.external.Addr()) || r.external.Port() == 0:
		return Mapping{}, fmt.Errorf("PCP: the mapped address %s is not usable", r.external)
	case r.lifetime == 0:
		return Mapping{}, errors.New("PCP: the mapping was granted no lifetime")
	}
	if s.epoch.observe(r.epoch, now) {
		s.log.Info("port mapping: the gateway lost its mappings (new epoch); mapped again", "gateway", s.gw)
	}
	return s.mapping(PCP, r.external, r.lifetime, now), nil
}

func (s *session) renewPMP(ctx context.Context) (Mapping, error) {
	if !s.ext.IsValid() {
		if err := s.pmpExternal(ctx); err != nil {
			return Mapping{}, err
		}
	}
	suggested := s.port
	if s.cur.External.IsValid() {
		suggested = s.cur.External.Port()
	}
	var r pmpResponse
	err := s.exchange(ctx, [][]byte{pmpMapRequest(s.port, suggested, s.lifetime)}, func(pkt []byte) (bool, error) {
		if pkt[0] != pmpVersion {
			return false, nil
		}
		var err error
		r, err = parsePMP(pkt)
		switch {
		case errors.Is(err, errMalformed):
			return false, err
		case r.op != pmpOpMapUDP:
			return false, nil
		case err != nil && r.result == 1:
			return true, fmt.Errorf("%w: %w", err, errVersion)
		case err != nil:
			return true, err
		case r.internal != s.port:
			return false, nil // another mapping's
		case r.mapped == 0 || r.lifetime == 0:
			return true, fmt.Errorf("NAT-PMP: granted port %d for %d s: not usable", r.mapped, r.lifetime)
		}
		return true, nil
	})
	if err != nil {
		return Mapping{}, err
	}
	now := time.Now()
	if s.epoch.observe(r.epoch, now) {
		// It lost its state, maybe its external address too: ask again.
		s.log.Info("port mapping: the gateway lost its mappings (new epoch); mapped again", "gateway", s.gw)
		if err := s.pmpExternal(ctx); err != nil {
			return Mapping{}, err
		}
	}
	return s.mapping(NATPMP, netip.AddrPortFrom(s.ext, r.mapped), r.lifetime, now), nil
}

// pmpExternal asks a NAT-PMP gateway for its external address.
func (s *session) pmpExternal(ctx context.Context) error {
	return s.exchange(ctx, [][]byte{pmpAddrRequest()}, func(pkt []byte) (bool, error) {
		if pkt[0] != pmpVersion {
			return false, nil
		}
		r, err := parsePMP(pkt)
		switch {
		case errors.Is(err, errMalformed):
			return false, err
		case r.op != pmpOpAddr:
			return false, nil
		case err != nil:
			return true, err
		case !usableExternal(r.external):
			return true, fmt.Errorf("NAT-PMP: the gateway's external address %s is not usable", r.external)
		}
		s.ext = r.external
		s.epoch.observe(r.epoch, time.Now())
		return true, nil
	})
}

func (s *session) mapping(proto string, ext netip.AddrPort, lifetime uint32, now time.Time) Mapping {
	return Mapping{Protocol: proto, Gateway: s.gw, Internal: netip.AddrPortFrom(s.local, s.port),
		External: ext, Lifetime: time.Duration(lifetime) * time.Second, Renewed: now}
}

// release deletes the mapping on the gateway: waiting for its answer (until ctx ends),
// or, when wait is false (the gateway is probably out of reach), sending once.
func (s *session) release(ctx context.Context, wait bool) {
	if !s.cur.External.IsValid() {
		return
	}
	var req []byte
	if s.proto == PCP {
		req = pcpMapRequest(s.local, s.nonce, s.port, netip.AddrPort{}, 0)
	} else {
		req = pmpMapRequest(s.port, 0, 0)
	}
	s.log.Info("port mapping: deleting", "protocol", s.proto, "gateway", s.gw, "external", s.cur.External)
	s.cur = Mapping{}
	if !wait {
		s.conn.Write(req)
		return
	}
	err := s.exchange(ctx, [][]byte{req}, func(pkt []byte) (bool, error) {
		if pkt[0] == pcpVersion {
			r, err := parsePCP(pkt)
			return !errors.Is(err, errMalformed) && r.op == pcpOpMap && (err != nil || r.nonce == s.nonce), err
		}
		r, err := parsePMP(pkt)
		return !errors.Is(err, errMalformed) && r.op == pmpOpMapUDP && (err != nil || r.internal == s.port), err
	})
	if err != nil {
		s.log.Debug("port mapping: delete", "err", err)
	}
}

// usableExternal reports whether a gateway's external address can be given to peers.
func usableExternal(a netip.Addr) bool {
	return a.Is4() && !a.IsUnspecified() && !a.IsLoopback() && !a.IsMulticast() && !a.IsLinkLocalUnicast()
}
