package bind

import (
	"net"

	"golang.org/x/sys/unix"
)

// enableGRO asks the kernel to coalesce datagrams read from c (UDP GRO); udpbatch reads
// back whether it took.
func enableGRO(c *net.UDPConn) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1) })
}
