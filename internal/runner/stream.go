package runner

import (
	"bytes"
	"io"
	"sync"
	"syscall"

	"github.com/runbox-dev/runbox/internal/jail"
)

// Stream receives a request's progress as it happens (all fields
// optional): the start of each step, and the output of every box, live
// (the bytes each Result keeps, written from the goroutine reading that
// stream). Stdin, when set, is the run's standard input instead of
// Request.Stdin, read while the program runs (not used with cases).
//
// A compile shared with another request, or taken from the cache, does not
// stream: its output arrives in the Response only.
type Stream struct {
	Stage          func(step string, index int) // "compile", "run", or "case" with its index
	Stdout, Stderr io.Writer
	Stdin          io.Reader
	// Signals, when set, signals the program running now (the run, or the
	// case running now; not the compile).
	Signals *Signaler
}

// Signaler signals the program a streamed run is running now.
type Signaler struct {
	mu  sync.Mutex
	cur *jail.Control
}

// Signal sends sig to the program running now: jail.ErrNotStarted before
// the first starts, jail.ErrCommandEnded between two and after the last.
func (s *Signaler) Signal(sig syscall.Signal) error {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c == nil {
		return jail.ErrNotStarted
	}
	return c.Signal(sig)
}

// control is the Control of the next program the stream runs.
func (s *Stream) control() *jail.Control {
	if s == nil || s.Signals == nil {
		return nil
	}
	c := &jail.Control{}
	s.Signals.mu.Lock()
	s.Signals.cur = c
	s.Signals.mu.Unlock()
	return c
}

func (s *Stream) stage(step string, index int) {
	if s != nil && s.Stage != nil {
		s.Stage(step, index)
	}
}

func (s *Stream) tees() (stdout, stderr io.Writer) {
	if s == nil {
		return nil, nil
	}
	return s.Stdout, s.Stderr
}

func (s *Stream) stdin(fallback []byte) io.Reader {
	if s != nil && s.Stdin != nil {
		return s.Stdin
	}
	return bytes.NewReader(fallback)
}
