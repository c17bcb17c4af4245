// Package udpbatch moves UDP datagrams in batches: recvmmsg/sendmmsg with UDP GRO/GSO
// on Linux, one datagram per system call elsewhere.
package udpbatch

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// SocketBuffer is the send and receive buffer size asked for (beyond the system limit
// when running with CAP_NET_ADMIN), so bursts are not dropped by the kernel.
const SocketBuffer = 7 << 20

// MaxSegments is the most datagrams one GSO message may carry (a kernel limit).
const MaxSegments = 64

// MaxGSOBytes is the most bytes one GSO message may carry: an IPv4 UDP payload.
const MaxGSOBytes = 1<<16 - 1 - 20 - 8

// MaxDatagram is the largest UDP payload; buffers of this size can take any GRO read.
const MaxDatagram = 1<<16 - 1

// Msg is one datagram, or with Seg > 0 a run of datagrams of Seg bytes each (the last
// may be shorter) in one buffer.
type Msg struct {
	Buf  []byte         // read: the buffer to fill, whole length used; write: the bytes to send
	N    int            // read: bytes received
	Seg  int            // read: GRO segment size; write: GSO segment size; 0: one datagram
	Addr netip.AddrPort // read: source; write: destination (ignored on a connected socket)
}

// Segments calls fn for each datagram in m's first N bytes (a read message).
func (m *Msg) Segments(fn func(p []byte)) {
	b := m.Buf[:m.N]
	if m.Seg <= 0 {
		fn(b)
		return
	}
	for len(b) > 0 {
		n := min(m.Seg, len(b))
		fn(b[:n])
		b = b[n:]
	}
}

// Conn is a UDP socket with batch I/O. ReadBatch must not be called concurrently with
// itself; WriteBatch may be called from any number of goroutines.
type Conn struct {
	uc        *net.UDPConn
	connected bool
	sys       sysConn

	scratch sync.Pool // *scratch: per-call message headers for WriteBatch
}

// New wraps c. Use sockets from Listen or Dial to get large buffers and GRO.
func New(c *net.UDPConn) *Conn {
	bc := &Conn{uc: c, connected: c.RemoteAddr() != nil}
	bc.sys.init(c)
	return bc
}

// Listen opens a UDP socket on address with large buffers and, on Linux, GRO enabled.
func Listen(ctx context.Context, network, address string) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: control}
	pc, err := lc.ListenPacket(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("listen %s %s: %w", network, address, err)
	}
	uc := pc.(*net.UDPConn)
	tune(uc)
	return uc, nil
}

// Dial opens a UDP socket connected to address, set up like Listen's.
func Dial(ctx context.Context, network, address string) (*net.UDPConn, error) {
	d := net.Dialer{Control: control}
	c, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("dial %s %s: %w", network, address, err)
	}
	uc := c.(*net.UDPConn)
	tune(uc)
	return uc, nil
}

// UDPConn is the underlying socket.
func (c *Conn) UDPConn() *net.UDPConn { return c.uc }

// GSO reports whether WriteBatch can send a message with Seg > 0 in one system call
// (it always accepts one, splitting it itself when it cannot).
func (c *Conn) GSO() bool { return c.sys.gsoEnabled() }

// GSOMaxSegment is the largest segment size worth coalescing: larger runs are split.
func (c *Conn) GSOMaxSegment() int { return c.sys.gsoMaxSegment() }

// GRO reports whether reads may return coalesced messages (Seg > 0); their buffers
// should then be MaxDatagram bytes.
func (c *Conn) GRO() bool { return c.sys.gro }

// Close closes the socket.
func (c *Conn) Close() error { return c.uc.Close() }
