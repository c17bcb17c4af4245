package netlab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// stopGrace is how long Stop waits after SIGTERM before it kills.
const stopGrace = 5 * time.Second

// logTailLines is how much of a process's log a failed test prints.
const logTailLines = 60

// Proc is a background process running in a host's namespace.
type Proc struct {
	host    *Host
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error // the exit status; written before done is closed

	stopOnce sync.Once
}

// Start runs the program name with args in the background in the host's namespace, with
// stdout and stderr going to a log file in the test's temporary directory. The process is
// stopped in cleanup, before the lab's namespaces are deleted, and when the test has failed
// the tail of its log is printed.
func (h *Host) Start(name string, args ...string) *Proc {
	l := h.lab
	l.t.Helper()
	l.mu.Lock()
	l.procSeq++
	seq := l.procSeq
	l.mu.Unlock()
	logPath := filepath.Join(l.logDir, fmt.Sprintf("%s-%s-%d.log", h.name, filepath.Base(name), seq))
	f, err := os.Create(logPath)
	if err != nil {
		l.t.Fatalf("netlab: start %s on %s: %v", name, h.name, err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.ns, name}, args...)...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = ownProcessGroup()
	if err := cmd.Start(); err != nil {
		f.Close()
		l.t.Fatalf("netlab: start %s on %s: %v", name, h.name, err)
	}
	p := &Proc{host: h, name: filepath.Base(name), cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	l.t.Cleanup(func() {
		p.Stop()
		if l.t.Failed() {
			l.t.Logf("netlab: last lines of %s on %s (%s):\n%s", p.name, h.name, p.logPath, p.tail(logTailLines))
		}
	})
	return p
}

// Wait waits for the process to exit and returns its exit status, as exec.Cmd.Wait does.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Stop sends SIGTERM to the process (and anything it started), SIGKILL if it is still running
// a few seconds later, and waits for it to exit. It may be called more than once.
func (p *Proc) Stop() {
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		signalGroup(p.cmd.Process.Pid, false)
		select {
		case <-p.done:
		case <-time.After(stopGrace):
			signalGroup(p.cmd.Process.Pid, true)
			<-p.done
		}
	})
	<-p.done
}

// Log is everything the process has written to stdout and stderr so far.
func (p *Proc) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", p.logPath, err)
	}
	return string(b)
}

// LogPath is the file the process's output goes to.
func (p *Proc) LogPath() string { return p.logPath }

func (p *Proc) tail(n int) string {
	log := strings.TrimRight(p.Log(), "\n")
	if log == "" {
		return "(no output)"
	}
	lines := strings.Split(log, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Pid is the process's ID (`ip netns exec` execs the program, so it is the program's own).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }
