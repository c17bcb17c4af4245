package mesh

import (
	"net"
	"net/netip"
	"time"

	"github.com/weftmesh/weft/wire"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// peerConfigs is peerDiff for kernel WireGuard: the wgctrl peer configurations that turn
// peer set have into want, with removals, additions and changes of the changed peers only.
// An endpoint is set only when the configured one changed, so one the kernel learned by
// roaming stays in use. Nil means nothing to do.
func peerConfigs(have, want map[wire.Key]Peer) []wgtypes.PeerConfig {
	var out []wgtypes.PeerConfig
	for _, k := range sortedKeys(have) {
		if _, ok := want[k]; !ok {
			out = append(out, wgtypes.PeerConfig{PublicKey: wgtypes.Key(k), Remove: true})
		}
	}
	for _, k := range sortedKeys(want) {
		p := want[k]
		old, existed := have[k]
		if existed && peerEqual(old, p) {
			continue
		}
		// Whole seconds, as the userspace engine sends it and as the kernel keeps it.
		keepalive := p.PersistentKeepalive.Truncate(time.Second)
		pc := wgtypes.PeerConfig{
			PublicKey:                   wgtypes.Key(k),
			PersistentKeepaliveInterval: &keepalive,
			ReplaceAllowedIPs:           true,
			AllowedIPs:                  make([]net.IPNet, 0, len(p.AllowedIPs)),
		}
		if p.Endpoint.IsValid() && (!existed || old.Endpoint != p.Endpoint) {
			pc.Endpoint = net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.Endpoint.Addr().Unmap(), p.Endpoint.Port()))
		}
		for _, ip := range p.AllowedIPs {
			ip = ip.Masked()
			pc.AllowedIPs = append(pc.AllowedIPs, net.IPNet{
				IP:   ip.Addr().AsSlice(),
				Mask: net.CIDRMask(ip.Bits(), ip.Addr().BitLen()),
			})
		}
		out = append(out, pc)
	}
	return out
}

// peerStats converts the kernel's view of its peers into PeerStats.
func peerStats(dev *wgtypes.Device) map[wire.Key]PeerStats {
	out := make(map[wire.Key]PeerStats, len(dev.Peers))
	for _, p := range dev.Peers {
		var st PeerStats
		if p.Endpoint != nil {
			ep := p.Endpoint.AddrPort()
			st.Endpoint = netip.AddrPortFrom(ep.Addr().Unmap(), ep.Port())
		}
		st.LastHandshake = p.LastHandshakeTime // zero when there was none
		st.RxBytes, st.TxBytes = uint64(p.ReceiveBytes), uint64(p.TransmitBytes)
		out[wire.Key(p.PublicKey)] = st
	}
	return out
}
