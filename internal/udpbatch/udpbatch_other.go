//go:build !linux

package udpbatch

import (
	"net"
	"net/netip"
	"syscall"
)

var control func(network, address string, rc syscall.RawConn) error // nothing before bind

// tune asks for large socket buffers; the system may grant less, which is fine.
func tune(c *net.UDPConn) {
	_ = c.SetReadBuffer(SocketBuffer)
	_ = c.SetWriteBuffer(SocketBuffer)
}

type sysConn struct {
	uc  *net.UDPConn
	gro bool // never: this platform has no GRO we use
}

func (s *sysConn) init(c *net.UDPConn) { s.uc = c }

func (s *sysConn) gsoEnabled() bool { return false }

func (s *sysConn) gsoMaxSegment() int { return 0 }

type scratch struct{}

// ReadBatch blocks until a datagram arrives and fills msgs[0].
func (c *Conn) ReadBatch(msgs []Msg) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	m := &msgs[0]
	n, addr, err := c.uc.ReadFromUDPAddrPort(m.Buf)
	if err != nil {
		return 0, err
	}
	m.N, m.Seg = n, 0
	m.Addr = addr
	if a := addr.Addr(); a.Is4In6() {
		m.Addr = netip.AddrPortFrom(a.Unmap(), addr.Port())
	}
	return 1, nil
}

// WriteBatch sends msgs one datagram at a time.
func (c *Conn) WriteBatch(msgs []Msg) error {
	for i := range msgs {
		m := &msgs[i]
		for b := m.Buf; ; {
			n := len(b)
			if m.Seg > 0 {
				n = min(m.Seg, n)
			}
			var err error
			if c.connected {
				_, err = c.uc.Write(b[:n])
			} else {
				_, err = c.uc.WriteToUDPAddrPort(b[:n], m.Addr)
			}
			if err != nil {
				return err
			}
			b = b[n:]
			if len(b) == 0 {
				break
			}
		}
	}
	return nil
}
