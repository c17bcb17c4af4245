package relay

import (
	"fmt"
	"net/http"
	"sync/atomic"
)

// counters are the relay's running totals.
type counters struct {
	forwardedPackets atomic.Uint64
	forwardedBytes   atomic.Uint64
	droppedUnknown   atomic.Uint64 // destination key not connected
	droppedRate      atomic.Uint64 // sender over its byte rate
	droppedQueue     atomic.Uint64 // TLS receiver's queue full
	droppedUnauth    atomic.Uint64 // frame without a valid session
	droppedInvalid   atomic.Uint64 // not a relay message, or a malformed one
	droppedSend      atomic.Uint64 // the socket refused it
	challenges       atomic.Uint64
	helloLimited     atomic.Uint64 // handshake messages over a source's rate
	authFailed       atomic.Uint64 // bad, stale or replayed proofs
	admitted         atomic.Uint64
	refused          atomic.Uint64 // proofs that held but found the relay full
}

// Stats is a snapshot of the relay's counters.
type Stats struct {
	Clients          int
	ForwardedPackets uint64
	ForwardedBytes   uint64 // forwarded frame bytes, as sent on
	DroppedUnknown   uint64
	DroppedRate      uint64
	DroppedQueue     uint64
	DroppedUnauth    uint64
	DroppedInvalid   uint64
	DroppedSend      uint64
	Challenges       uint64
	HelloLimited     uint64
	AuthFailed       uint64
	Admitted         uint64
	Refused          uint64
}

// Stats returns the counters now.
func (s *Server) Stats() Stats {
	s.mu.RLock()
	n := len(s.byKey)
	s.mu.RUnlock()
	c := &s.stats
	return Stats{
		Clients:          n,
		ForwardedPackets: c.forwardedPackets.Load(),
		ForwardedBytes:   c.forwardedBytes.Load(),
		DroppedUnknown:   c.droppedUnknown.Load(),
		DroppedRate:      c.droppedRate.Load(),
		DroppedQueue:     c.droppedQueue.Load(),
		DroppedUnauth:    c.droppedUnauth.Load(),
		DroppedInvalid:   c.droppedInvalid.Load(),
		DroppedSend:      c.droppedSend.Load(),
		Challenges:       c.challenges.Load(),
		HelloLimited:     c.helloLimited.Load(),
		AuthFailed:       c.authFailed.Load(),
		Admitted:         c.admitted.Load(),
		Refused:          c.refused.Load(),
	}
}

func (s *Server) logStats() {
	st := s.Stats()
	s.log.Info("relay stats", "clients", st.Clients,
		"forwarded_packets", st.ForwardedPackets, "forwarded_bytes", st.ForwardedBytes,
		"dropped_unknown_dst", st.DroppedUnknown, "dropped_rate", st.DroppedRate,
		"dropped_queue", st.DroppedQueue, "dropped_unauth", st.DroppedUnauth,
		"dropped_invalid", st.DroppedInvalid, "dropped_send", st.DroppedSend,
		"admitted", st.Admitted, "refused", st.Refused, "auth_failed", st.AuthFailed,
		"hello_limited", st.HelloLimited)
}

// MetricsHandler serves the counters in the Prometheus text format.
func (s *Server) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := s.Stats()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "weft_relay_clients %d\n", st.Clients)
		fmt.Fprintf(w, "weft_relay_forwarded_packets_total %d\n", st.ForwardedPackets)
		fmt.Fprintf(w, "weft_relay_forwarded_bytes_total %d\n", st.ForwardedBytes)
		for _, d := range []struct {
			reason string
			n      uint64
		}{
			{"unknown_dst", st.DroppedUnknown}, {"rate", st.DroppedRate}, {"queue", st.DroppedQueue},
			{"unauthenticated", st.DroppedUnauth}, {"invalid", st.DroppedInvalid}, {"send", st.DroppedSend},
		} {
			fmt.Fprintf(w, "weft_relay_dropped_packets_total{reason=%q} %d\n", d.reason, d.n)
		}
		fmt.Fprintf(w, "weft_relay_challenges_total %d\n", st.Challenges)
		fmt.Fprintf(w, "weft_relay_handshakes_limited_total %d\n", st.HelloLimited)
		fmt.Fprintf(w, "weft_relay_auth_failed_total %d\n", st.AuthFailed)
		fmt.Fprintf(w, "weft_relay_admitted_total %d\n", st.Admitted)
		fmt.Fprintf(w, "weft_relay_refused_total %d\n", st.Refused)
	})
}
