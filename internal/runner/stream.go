package runner

import (
	"bytes"
	"io"
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
