package netlab

import (
	"fmt"
	"os"
	"sync"
)

// Standalone is a TB for programs that are not tests, such as the demo: cleanups run when
// the program calls Close instead of when a test ends.
//
//	s, err := netlab.NewStandalone(log.Printf)
//	if err != nil { ... }
//	defer s.Close()
//	lab := netlab.New(s, "demo")
//
// Like t.Fatal, Fatalf (called by lab methods when setup fails) does not return: it logs,
// closes and exits the program with status 1.
type Standalone struct {
	logf func(format string, args ...any)

	mu       sync.Mutex // guards the fields below
	cleanups []func()
	failed   bool
	closed   bool
}

// NewStandalone returns a Standalone logging through logf, or an error saying why this
// machine cannot run a lab.
func NewStandalone(logf func(format string, args ...any)) (*Standalone, error) {
	if err := preflight(); err != nil {
		return nil, err
	}
	return &Standalone{logf: logf}, nil
}

// Close runs the cleanups, last registered first: processes stop, namespaces go. When the
// program has failed (Fail, Errorf), process logs' tails are printed first. Later calls do
// nothing.
func (s *Standalone) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	fs := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// Fail marks the program as failed, so that Close prints the processes' log tails.
func (s *Standalone) Fail() {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
}

func (s *Standalone) Helper() {}

func (s *Standalone) Logf(format string, args ...any) { s.logf(format, args...) }

func (s *Standalone) Errorf(format string, args ...any) {
	s.Fail()
	s.logf(format, args...)
}

func (s *Standalone) Fatalf(format string, args ...any) {
	s.Errorf(format, args...)
	s.Close()
	os.Exit(1)
}

func (s *Standalone) Skip(args ...any) { s.Fatalf("%s", fmt.Sprint(args...)) }

// Cleanup registers f to run at Close; after Close it runs at once.
func (s *Standalone) Cleanup(f func()) {
	s.mu.Lock()
	if !s.closed {
		s.cleanups = append(s.cleanups, f)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	f()
}

// TempDir makes a new directory that Close removes.
func (s *Standalone) TempDir() string {
	dir, err := os.MkdirTemp("", "netlab-")
	if err != nil {
		s.Fatalf("netlab: temporary directory: %v", err)
	}
	s.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (s *Standalone) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}
