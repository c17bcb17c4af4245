//go:build !linux && !darwin

package broker

import (
	"errors"
	"net"
)

// peerUID cannot identify the peer here, so the admin socket refuses everyone
// rather than trust a file mode this system may not enforce.
func peerUID(net.Conn) (int, error) {
	return -1, errors.New("peer credentials are not available on this system: administer the broker on Linux or macOS")
}
