package netlab

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// A router with RouterOptions.PortMapping runs miniupnpd (Debian package
// miniupnpd-nftables) in its namespace, offering NAT-PMP and PCP on its LAN (UPnP off).
// miniupnpd keeps its forwarding rules in regular chains of the router's own table, which
// the router's base chains jump to (upnp* below), so they coexist with the lab's NAT and
// filters and go with the namespace.
//
// miniupnpd refuses to map ports when its WAN address is a private or reserved one, and
// the lab's internet (TEST-NET-3) is reserved. It believes STUN, though: the lab answers
// its STUN requests itself, on the router's loopback, with the router's current WAN address
// (what a STUN server on the internet would see from a router without NAT above it).
// After Renumber, SIGUSR1 makes miniupnpd ask again and announce the new address.
const (
	upnpForward = "upnp_fwd"
	upnpPre     = "upnp_pre"
	upnpPost    = "upnp_post"
	// upnpSTUN is where the router's own STUN answerer listens, on loopback.
	upnpSTUN = "127.0.0.1:3478"
	// upnpReady is how long miniupnpd may take to start (its STUN check waits for answers).
	upnpReady = 15 * time.Second
)

// miniupnpd is one router's miniupnpd.
type miniupnpd struct {
	proc *Proc
	stun net.PacketConn
}

// startMiniupnpd starts miniupnpd on r and waits until it takes requests.
func (l *Lab) startMiniupnpd(r *Router) *miniupnpd {
	l.t.Helper()
	bin, err := exec.LookPath("miniupnpd")
	if err != nil {
		bin = "/usr/sbin/miniupnpd" // root's PATH may lack sbin
		if _, serr := os.Stat(bin); serr != nil {
			l.t.Fatalf("netlab: router %s: miniupnpd not found (Debian package miniupnpd-nftables): run ./build.sh deps", r.name)
		}
	}
	pc, err := r.ListenPacket("udp4", upnpSTUN)
	if err != nil {
		l.t.Fatalf("netlab: router %s: STUN answerer for miniupnpd: %v", r.name, err)
	}
	go serveRouterSTUN(pc, r)
	l.t.Cleanup(func() { pc.Close() })

	base := filepath.Join(l.logDir, r.name+"-miniupnpd")
	if err := os.WriteFile(base+".conf", []byte(miniupnpdConf(r.lan.prefix, base+".leases")), 0o600); err != nil {
		l.t.Fatalf("netlab: router %s: %v", r.name, err)
	}
	// -d: stay in the foreground, log to stderr; -P: a pid file of its own (the default
	// one would stop a second router's miniupnpd).
	p := r.Start(bin, "-d", "-f", base+".conf", "-P", base+".pid")
	deadline := time.Now().Add(upnpReady)
	for {
		log := p.Log()
		if strings.Contains(log, "Listening for NAT-PMP/PCP traffic") && strings.Contains(log, "Port forwarding is now enabled") {
			return &miniupnpd{proc: p, stun: pc}
		}
		select {
		case <-p.Done():
			l.t.Fatalf("netlab: router %s: miniupnpd exited: %v\n%s", r.name, p.Wait(), log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("netlab: router %s: miniupnpd did not come up within %s:\n%s", r.name, upnpReady, log)
		}
	}
}

// miniupnpdConf is miniupnpd's configuration: NAT-PMP and PCP (enable_natpmp turns on
// both) for hosts of the LAN, mapping their own ports only (secure mode), rules in the
// router's table.
func miniupnpdConf(lan netip.Prefix, leases string) string {
	return fmt.Sprintf(`ext_ifname=%s
listening_ip=%s
enable_upnp=no
enable_natpmp=yes
secure_mode=yes
ext_perform_stun=yes
ext_stun_host=%s
ext_stun_port=%s
upnp_table_name=netlab
upnp_nat_table_name=netlab
upnp_forward_chain=%s
upnp_nat_chain=%s
upnp_nat_postrouting_chain=%s
lease_file=%s
allow 1024-65535 %s 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
`, wanIf, lanIf, strings.Split(upnpSTUN, ":")[0], strings.Split(upnpSTUN, ":")[1],
		upnpForward, upnpPre, upnpPost, leases, lan)
}

// serveRouterSTUN answers STUN binding requests with the router's current WAN address
// and the request's source port, until pc is closed.
func serveRouterSTUN(pc net.PacketConn, r *Router) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		src, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		if resp := stunAnswer(buf[:n], netip.AddrPortFrom(r.Addr(), uint16(src.Port))); resp != nil {
			pc.WriteTo(resp, from)
		}
	}
}

// stunAnswer is the RFC 5389 binding success response to req, with XOR-MAPPED-ADDRESS
// mapped (IPv4); nil when req is no binding request.
func stunAnswer(req []byte, mapped netip.AddrPort) []byte {
	const cookie = 0x2112A442
	if len(req) < 20 || binary.BigEndian.Uint16(req[0:2]) != 0x0001 || binary.BigEndian.Uint32(req[4:8]) != cookie || !mapped.Addr().Is4() {
		return nil
	}
	b := make([]byte, 20, 32)
	binary.BigEndian.PutUint16(b[0:2], 0x0101)
	binary.BigEndian.PutUint16(b[2:4], 12)
	copy(b[4:20], req[4:20])                     // cookie and transaction ID
	b = binary.BigEndian.AppendUint16(b, 0x0020) // XOR-MAPPED-ADDRESS
	b = binary.BigEndian.AppendUint16(b, 8)
	b = append(b, 0, 1) // IPv4
	b = binary.BigEndian.AppendUint16(b, mapped.Port()^uint16(cookie>>16))
	a := mapped.Addr().As4()
	return binary.BigEndian.AppendUint32(b, binary.BigEndian.Uint32(a[:])^cookie)
}

// readvertise makes miniupnpd learn the router's new WAN address and announce it on the LAN.
func (m *miniupnpd) readvertise(l *Lab) {
	l.t.Helper()
	l.must("kill", "-USR1", fmt.Sprint(m.proc.Pid()))
}

// PortMappingLog is what the router's miniupnpd has logged ("" without one), for tests
// that check what it granted.
func (r *Router) PortMappingLog() string {
	if r.upnp == nil {
		return ""
	}
	return r.upnp.proc.Log()
}
