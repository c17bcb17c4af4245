package relayclient

import (
	"errors"
	"syscall"

	"golang.org/x/sys/windows"
)

// isConnRefused: Windows reports an ICMP port unreachable on a UDP socket as
// WSAECONNRESET.
func isConnRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, windows.WSAECONNRESET)
}
