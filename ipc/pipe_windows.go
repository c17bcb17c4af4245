package ipc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"

	"github.com/Microsoft/go-winio"
	"golang.org/x/sys/windows"
)

// DefaultSocketPath is the named pipe weftd listens on unless told otherwise.
func DefaultSocketPath() string { return `\\.\pipe\weftd` }

// pipeSDDL admits SYSTEM and Administrators fully and the interactive user read/write;
// the protected DACL (P) keeps inherited entries out.
const pipeSDDL = "D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GRGW;;;IU)"

// Listen creates the named pipe at path with an access list that admits only SYSTEM,
// Administrators and the interactive user.
func Listen(path string) (net.Listener, error) {
	ln, err := winio.ListenPipe(path, &winio.PipeConfig{
		SecurityDescriptor: pipeSDDL,
		InputBufferSize:    64 << 10,
		OutputBufferSize:   64 << 10,
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return ln, nil
}

// checkPeer admits every connection: the pipe's access list already refused anyone
// else at open time.
func checkPeer(net.Conn) error { return nil }

func dial(ctx context.Context, path string) (net.Conn, error) {
	return winio.DialPipeContext(ctx, path)
}

func notRunning(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, windows.ERROR_FILE_NOT_FOUND)
}
