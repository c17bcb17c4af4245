//go:build !linux && !darwin

package ipc

import (
	"errors"
	"net"
)

// PeerUID cannot identify the peer here, so callers refuse everyone rather than trust a
// file mode this system may not enforce.
func PeerUID(net.Conn) (int, error) {
	return -1, errors.New("peer credentials are not available on this system: use Linux or macOS")
}
