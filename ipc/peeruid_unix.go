//go:build linux || darwin

package ipc

import (
	"errors"
	"fmt"
	"net"
)

// PeerUID returns the uid of the process at the other end of a Unix socket connection, as
// the kernel reports it. Other local sockets (the broker's admin socket) check callers with it.
func PeerUID(c net.Conn) (int, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1, errors.New("peer credentials: not a Unix socket connection")
	}
	cred, err := peerCredentials(uc)
	if err != nil {
		return -1, fmt.Errorf("peer credentials: %w", err)
	}
	return int(cred.uid), nil
}
