package main

import (
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

// On a terminal, one line rewritten in place and erased at the end; to a
// pipe or a file, nothing.
func TestProgress(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if p := newProgress(w); p.on {
		t.Fatal("progress is on for a pipe")
	}
	var b strings.Builder
	p := &progress{w: &b, on: true}
	p.show("testing %s (%d/%d)…", "python", 1, 2)
	p.show("testing %s (%d/%d)…", "go", 2, 2)
	p.done()
	cols := utf8.RuneCountInString
	want := "\rtesting python (1/2)…" + "\rtesting go (2/2)…" + strings.Repeat(" ", cols("testing python (1/2)…")-cols("testing go (2/2)…")) +
		"\r" + strings.Repeat(" ", cols("testing go (2/2)…")) + "\r"
	if b.String() != want {
		t.Fatalf("wrote %q, want %q", b.String(), want)
	}
	off := &progress{w: &b, on: false}
	off.show("x")
	off.done()
	if b.String() != want {
		t.Fatal("progress wrote while off")
	}
}
