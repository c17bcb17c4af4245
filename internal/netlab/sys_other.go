//go:build !linux

package netlab

import (
	"errors"
	"os"
	"strconv"
	"syscall"
)

// errNotLinux is why a lab cannot run here; New skips with it before any other function of
// this file is reached.
var errNotLinux = errors.New("netlab: needs Linux network namespaces; run the end-to-end tests on Linux as root")

func platformSupported() error { return errNotLinux }

func lockPrefix(string) (*os.File, error) { return nil, errNotLinux }

func unlockPrefix(f *os.File) {
	if f != nil {
		f.Close()
	}
}

func killPID(pid string) {
	if n, err := strconv.Atoi(pid); err == nil {
		if p, err := os.FindProcess(n); err == nil {
			p.Kill()
		}
	}
}

func ownProcessGroup() *syscall.SysProcAttr { return nil }

func signalGroup(pid int, _ bool) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
}
