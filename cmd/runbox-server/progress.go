package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/runbox-dev/runbox/internal/env"
)

// progress shows long work on a terminal: one line, rewritten in place
// and erased at the end. Written to anything but a terminal (a log file,
// a pipe, CI), it writes nothing.
type progress struct {
	w     io.Writer
	on    bool
	width int
}

func newProgress(w io.Writer) *progress {
	f, ok := w.(*os.File)
	return &progress{w: w, on: ok && term.IsTerminal(int(f.Fd()))}
}

// show replaces the line with msg.
func (p *progress) show(format string, a ...any) {
	if !p.on {
		return
	}
	msg := fmt.Sprintf(format, a...)
	n := utf8.RuneCountInString(msg) // the columns it takes, near enough
	pad := max(p.width-n, 0)
	p.width = n
	fmt.Fprint(p.w, "\r"+msg+strings.Repeat(" ", pad))
}

// done erases the line.
func (p *progress) done() {
	if p.on && p.width > 0 {
		fmt.Fprint(p.w, "\r"+strings.Repeat(" ", p.width)+"\r")
		p.width = 0
	}
}

// detecting is an env.DetectEach callback that shows which environment's
// version command runs.
func (p *progress) detecting(i, n int, e *env.Environment) {
	p.show("runbox: looking for the languages' toolchains (%d/%d: %s)…", i+1, n, e.Name)
}
