package mesh

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/mesh/bind"
	"github.com/weftmesh/weft/wire"
)

// peerDiff renders the wireguard-go configuration commands that turn peer set have into
// want: removals, additions, and changes of the changed peers only. A new peer's endpoint
// is the peer itself ("peer:<hex key>"), which weft's bind routes over the peer's current
// path; it is never sent again, so an address WireGuard roamed to stays in use until
// packets arrive on a known path. Peer.Endpoint is not WireGuard's here: it is a candidate.
func peerDiff(have, want map[wire.Key]Peer) string {
	var b strings.Builder
	for _, k := range sortedKeys(have) {
		if _, ok := want[k]; !ok {
			fmt.Fprintf(&b, "public_key=%s\nremove=true\n", k.Hex())
		}
	}
	for _, k := range sortedKeys(want) {
		p := want[k]
		old, existed := have[k]
		if existed && peerEqual(old, p) {
			continue
		}
		fmt.Fprintf(&b, "public_key=%s\n", k.Hex())
		if !existed {
			fmt.Fprintf(&b, "endpoint=%s\n", bind.PeerEndpointString(k))
		}
		fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", int(p.PersistentKeepalive/time.Second))
		b.WriteString("replace_allowed_ips=true\n")
		for _, ip := range p.AllowedIPs {
			fmt.Fprintf(&b, "allowed_ip=%s\n", ip)
		}
	}
	return b.String()
}

func peerEqual(a, b Peer) bool {
	return a.Endpoint == b.Endpoint && a.PersistentKeepalive == b.PersistentKeepalive &&
		slices.Equal(a.AllowedIPs, b.AllowedIPs)
}

func sortedKeys(m map[wire.Key]Peer) []wire.Key {
	keys := make([]wire.Key, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b wire.Key) int { return strings.Compare(string(a[:]), string(b[:])) })
	return keys
}

type deviceState struct {
	listenPort int
	peers      map[wire.Key]PeerStats
}

// parseState reads wireguard-go's "get" output (key=value lines, a public_key line opening
// each peer).
func parseState(s string) (deviceState, error) {
	st := deviceState{peers: map[wire.Key]PeerStats{}}
	var cur *PeerStats
	var curKey wire.Key
	var sec, nsec int64
	flush := func() {
		if cur != nil {
			if sec != 0 || nsec != 0 {
				cur.LastHandshake = time.Unix(sec, nsec)
			}
			st.peers[curKey] = *cur
		}
	}
	for _, line := range strings.Split(s, "\n") {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return st, fmt.Errorf("WireGuard state: malformed line %q", line)
		}
		var err error
		switch k {
		case "listen_port":
			st.listenPort, err = strconv.Atoi(v)
		case "public_key":
			flush()
			var raw []byte
			raw, err = hex.DecodeString(v)
			if err == nil && len(raw) != 32 {
				err = fmt.Errorf("key is %d bytes", len(raw))
			}
			copy(curKey[:], raw)
			cur, sec, nsec = &PeerStats{}, 0, 0
		case "endpoint":
			// "peer:<hex>" is weft's bind routing by path (see Engine.Stats); an
			// address is one WireGuard roamed to.
			if cur != nil && !strings.HasPrefix(v, bind.PeerPrefix) {
				cur.Endpoint, err = netip.ParseAddrPort(v)
			}
		case "last_handshake_time_sec":
			sec, err = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			nsec, err = strconv.ParseInt(v, 10, 64)
		case "rx_bytes":
			if cur != nil {
				cur.RxBytes, err = strconv.ParseUint(v, 10, 64)
			}
		case "tx_bytes":
			if cur != nil {
				cur.TxBytes, err = strconv.ParseUint(v, 10, 64)
			}
		}
		if err != nil {
			return st, fmt.Errorf("WireGuard state: %s: %w", k, err)
		}
	}
	flush()
	return st, nil
}
