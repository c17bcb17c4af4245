package udpbatch

import (
	"cmp"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

func tune(*net.UDPConn) {} // control did it all

// control sets the buffers (forcing them past the system limit when allowed, silently
// settling for less otherwise) and asks for GRO.
func control(network, address string, rc syscall.RawConn) error {
	return rc.Control(func(fd uintptr) {
		s := int(fd)
		_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, SocketBuffer)
		_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF, SocketBuffer)
		_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, SocketBuffer)
		_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, SocketBuffer)
		_ = unix.SetsockoptInt(s, unix.IPPROTO_UDP, unix.UDP_GRO, 1)
	})
}

type sysConn struct {
	pc  *ipv4.PacketConn // its batch calls work on IPv6 and dual-stack sockets too
	gso atomic.Bool      // cleared when the NIC turns out not to support it
	// gsoMax is the largest segment GSO may carry, lowered when the kernel refuses one
	// (a segment must fit the route's MTU).
	gsoMax atomic.Int64
	gro    bool
	// rx is ReadBatch's message headers, reused: ReadBatch is not concurrent.
	rx []ipv4.Message
}

func (s *sysConn) init(c *net.UDPConn) {
	s.pc = ipv4.NewPacketConn(c)
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		s.gso.Store(err == nil)
		s.gsoMax.Store(MaxDatagram)
		// Kernels before 5.12 cannot report UDP_GRO; if it cannot be read back it is
		// switched off, since reading coalesced datagrams as one would corrupt them.
		v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO)
		if err != nil {
			_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 0)
		}
		s.gro = err == nil && v == 1
	})
}

func (s *sysConn) gsoEnabled() bool { return s.gso.Load() }

func (s *sysConn) gsoMaxSegment() int { return int(s.gsoMax.Load()) }

var oobSize = unix.CmsgSpace(2)

// ReadBatch blocks until at least one datagram arrives and fills msgs[:n].
func (c *Conn) ReadBatch(msgs []Msg) (int, error) {
	s := &c.sys
	if len(s.rx) < len(msgs) {
		s.rx = make([]ipv4.Message, len(msgs))
		for i := range s.rx {
			s.rx[i].Buffers = make([][]byte, 1)
			s.rx[i].OOB = make([]byte, oobSize)
		}
	}
	rx := s.rx[:len(msgs)]
	for i := range rx {
		rx[i].Buffers[0] = msgs[i].Buf
		rx[i].OOB = rx[i].OOB[:cap(rx[i].OOB)]
		rx[i].Addr = nil
	}
	n, err := s.pc.ReadBatch(rx, 0)
	if err != nil {
		return 0, err
	}
	for i := range n {
		m := &msgs[i]
		m.N = rx[i].N
		m.Seg = 0
		if s.gro {
			m.Seg = groSize(rx[i].OOB[:rx[i].NN])
		}
		if ua, ok := rx[i].Addr.(*net.UDPAddr); ok {
			m.Addr = ua.AddrPort()
			m.Addr = netip.AddrPortFrom(m.Addr.Addr().Unmap(), m.Addr.Port())
		}
		rx[i].Buffers[0] = nil
	}
	return n, nil
}

// groSize finds the UDP_GRO segment size in a control message, 0 if there is none.
func groSize(oob []byte) int {
	for len(oob) >= unix.SizeofCmsghdr {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return 0
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && len(data) >= 2 {
			return int(*(*uint16)(unsafe.Pointer(&data[0])))
		}
		oob = rest
	}
	return 0
}

// putGSO writes a UDP_SEGMENT control message for seg into oob.
func putGSO(oob []byte, seg int) []byte {
	oob = oob[:unix.CmsgSpace(2)]
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = uint16(seg)
	return oob
}

type scratch struct {
	msgs  []ipv4.Message
	addrs []net.UDPAddr
	segs  []int // segs[i]: the GSO segment size of msgs[i], 0 for one datagram
}

// WriteBatch sends msgs. A datagram the kernel refuses is skipped; the first error is
// returned after the rest were sent.
func (c *Conn) WriteBatch(msgs []Msg) error {
	sc, _ := c.scratch.Get().(*scratch)
	if sc == nil || len(sc.msgs) < len(msgs) {
		n := max(len(msgs), 64)
		sc = &scratch{msgs: make([]ipv4.Message, n), addrs: make([]net.UDPAddr, n), segs: make([]int, n)}
		for i := range sc.msgs {
			sc.msgs[i].Buffers = make([][]byte, 1)
			sc.msgs[i].OOB = make([]byte, 0, oobSize)
			sc.addrs[i].IP = make(net.IP, 0, 16)
		}
	}
	defer c.scratch.Put(sc)
	gso := c.sys.gso.Load()
	gsoMax := int(c.sys.gsoMax.Load())
	var first error
	k := 0
	put := func(b []byte, seg int, addr netip.AddrPort) {
		if k == len(sc.msgs) {
			first = cmp.Or(first, c.send(sc, k))
			k = 0
		}
		k = c.stage(sc, k, b, seg, addr)
	}
	for i := range msgs {
		m := &msgs[i]
		seg := m.Seg
		if seg >= len(m.Buf) {
			seg = 0
		}
		switch {
		case seg == 0:
			put(m.Buf, 0, m.Addr)
		case !gso || seg > gsoMax:
			// Without GSO a run goes out as separate datagrams.
			for b := m.Buf; len(b) > 0; b = b[min(seg, len(b)):] {
				put(b[:min(seg, len(b))], 0, m.Addr)
			}
		default:
			// The kernel takes at most MaxSegments datagrams and MaxGSOBytes per message.
			chunk := min(MaxGSOBytes/seg, MaxSegments) * seg
			for b := m.Buf; len(b) > 0; b = b[min(chunk, len(b)):] {
				c := b[:min(chunk, len(b))]
				if len(c) <= seg {
					put(c, 0, m.Addr)
				} else {
					put(c, seg, m.Addr)
				}
			}
		}
	}
	return cmp.Or(first, c.send(sc, k))
}

// stage puts one message into sc.msgs[k] and returns k+1.
func (c *Conn) stage(sc *scratch, k int, b []byte, seg int, addr netip.AddrPort) int {
	t := &sc.msgs[k]
	t.Buffers[0] = b
	t.OOB = t.OOB[:0]
	if seg > 0 {
		t.OOB = putGSO(t.OOB, seg)
	}
	t.Addr = nil
	if !c.connected {
		t.Addr = setUDPAddr(&sc.addrs[k], addr)
	}
	sc.segs[k] = seg
	return k + 1
}

// send writes sc.msgs[:k]. When the kernel refuses a message it is skipped, or, if it
// was a GSO run the kernel cannot segment, sent again datagram by datagram.
func (c *Conn) send(sc *scratch, k int) error {
	var first error
	tx := sc.msgs[:k]
	segs := sc.segs[:k]
	for len(tx) > 0 {
		n, err := c.sys.pc.WriteBatch(tx, 0)
		if err == nil {
			tx, segs = tx[n:], segs[n:]
			continue
		}
		// The first message of this call failed.
		if seg := segs[0]; seg > 0 && gsoRefused(err) {
			if isEIO(err) {
				// The device cannot checksum-offload: GSO is off for good.
				c.sys.gso.Store(false)
			} else if int64(seg) <= c.sys.gsoMax.Load() {
				c.sys.gsoMax.Store(int64(seg) - 1)
			}
			err = c.sendSplit(&tx[0], seg)
		}
		first = cmp.Or(first, err)
		tx, segs = tx[1:], segs[1:]
	}
	for i := range k {
		sc.msgs[i].Buffers[0] = nil
	}
	return first
}

// sendSplit sends a GSO message's datagrams one by one, reusing its header.
func (c *Conn) sendSplit(m *ipv4.Message, seg int) error {
	var first error
	all := m.Buffers[0]
	m.OOB = m.OOB[:0]
	one := []ipv4.Message{*m}
	for b := all; len(b) > 0; {
		n := min(seg, len(b))
		one[0].Buffers = [][]byte{b[:n]}
		if _, err := c.sys.pc.WriteBatch(one, 0); err != nil {
			first = cmp.Or(first, err)
		}
		b = b[n:]
	}
	return first
}

// setUDPAddr fills ua (whose IP has 16 bytes of capacity) from a without allocating.
func setUDPAddr(ua *net.UDPAddr, a netip.AddrPort) *net.UDPAddr {
	ip := a.Addr()
	if ip.Is4() {
		b := ip.As4()
		ua.IP = append(ua.IP[:0], b[:]...)
	} else {
		b := ip.As16()
		ua.IP = append(ua.IP[:0], b[:]...)
	}
	ua.Port = int(a.Port())
	ua.Zone = ip.Zone()
	return ua
}

// gsoRefused: the kernel returns EIO for UDP_SEGMENT on a device without transmit
// checksum offload, and EINVAL or EMSGSIZE for a segment larger than the route's MTU.
func gsoRefused(err error) bool {
	return isEIO(err) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EMSGSIZE)
}

func isEIO(err error) bool { return errors.Is(err, unix.EIO) }
