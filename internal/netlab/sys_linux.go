package netlab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// lockDir holds one lock file per live lab prefix. /run is a tmpfs, so a reboot clears it.
const lockDir = "/run/netlab"

func platformSupported() error { return nil }

// lockPrefix takes an exclusive lock for a lab prefix. The kernel drops the lock when its
// holder dies, so a prefix whose lock can be taken has no live lab: whatever namespaces carry
// it are a crashed run's leftovers. A lock held elsewhere means a live lab with the same
// test and lab name, whose namespaces must not be touched.
func lockPrefix(prefix string) (*os.File, error) {
	if err := os.MkdirAll(lockDir, 0o700); err != nil {
		return nil, fmt.Errorf("lock for %s: %w", prefix, err)
	}
	path := filepath.Join(lockDir, prefix+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock for %s: %w", prefix, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another live lab uses prefix %s (the same test and lab name twice at once?): give each lab of a test its own name", prefix)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

func unlockPrefix(f *os.File) {
	os.Remove(f.Name())
	f.Close() // closing drops the flock
}

// killPID kills a leftover process found in a lab namespace.
func killPID(pid string) {
	if n, err := strconv.Atoi(pid); err == nil && n > 1 {
		syscall.Kill(n, syscall.SIGKILL)
	}
}

// ownProcessGroup puts a started process in a process group of its own, so that Stop
// reaches whatever it started too.
func ownProcessGroup() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup sends SIGTERM, or SIGKILL when kill is set, to the process group led by pid.
func signalGroup(pid int, kill bool) {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	syscall.Kill(-pid, sig)
}
