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

// Listen creates the named pipe at path with an access list (pipeSDDL) that admits only
// SYSTEM, Administrators and interactive users, and refuses remote clients.
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

// checkPeer admits SYSTEM, Administrators (elevated) and processes of the console
// session. The pipe's access list already refused everyone but interactive users; this
// narrows those to the one at the console, so another remote-desktop user cannot drive
// the device of whoever sits at it.
func checkPeer(c net.Conn) error {
	fc, ok := c.(interface{ Fd() uintptr })
	if !ok {
		return errors.New("not a named pipe connection")
	}
	var pid uint32
	if err := windows.GetNamedPipeClientProcessId(windows.Handle(fc.Fd()), &pid); err != nil {
		return fmt.Errorf("identify the pipe's client: %w", err)
	}
	privileged, err := privilegedProcess(pid)
	if err != nil {
		return err
	}
	if privileged {
		return nil
	}
	var session uint32
	if err := windows.ProcessIdToSessionId(pid, &session); err != nil {
		return fmt.Errorf("session of process %d: %w", pid, err)
	}
	if console := windows.WTSGetActiveConsoleSessionId(); session != console {
		return fmt.Errorf("process %d runs in session %d, not the console session %d", pid, session, console)
	}
	return nil
}

// privilegedProcess reports whether process pid runs as SYSTEM or with the
// Administrators group enabled in its token (an elevated administrator).
func privilegedProcess(pid uint32) (bool, error) {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, pid)
	if err != nil {
		return false, fmt.Errorf("open process %d: %w", pid, err)
	}
	defer windows.CloseHandle(h)
	var tok windows.Token
	if err := windows.OpenProcessToken(h, windows.TOKEN_QUERY, &tok); err != nil {
		return false, fmt.Errorf("open token of process %d: %w", pid, err)
	}
	defer tok.Close()
	u, err := tok.GetTokenUser()
	if err != nil {
		return false, fmt.Errorf("user of process %d: %w", pid, err)
	}
	system, err := windows.CreateWellKnownSid(windows.WinLocalSystemSid)
	if err != nil {
		return false, err
	}
	if u.User.Sid.Equals(system) {
		return true, nil
	}
	admins, err := windows.CreateWellKnownSid(windows.WinBuiltinAdministratorsSid)
	if err != nil {
		return false, err
	}
	groups, err := tok.GetTokenGroups()
	if err != nil {
		return false, fmt.Errorf("groups of process %d: %w", pid, err)
	}
	for _, g := range groups.AllGroups() {
		// A non-elevated administrator's token has the group for deny only: not enabled.
		if g.Sid.Equals(admins) && g.Attributes&windows.SE_GROUP_ENABLED != 0 && g.Attributes&windows.SE_GROUP_USE_FOR_DENY_ONLY == 0 {
			return true, nil
		}
	}
	return false, nil
}

func dial(ctx context.Context, path string) (net.Conn, error) {
	return winio.DialPipeContext(ctx, path)
}

func notRunning(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, windows.ERROR_FILE_NOT_FOUND)
}
