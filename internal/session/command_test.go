package session

import (
	"strings"
	"testing"
)

// Output joins small writes into chunks and reads from any byte offset.
func TestOutputLogOffsets(t *testing.T) {
	c := &Command{changed: make(chan struct{})}
	out, errs := logWriter{c, "stdout"}, logWriter{c, "stderr"}
	for range 1000 {
		out.Write([]byte("a"))
	}
	errs.Write([]byte("EE"))
	out.Write([]byte("bc"))
	if len(c.log) != 3 {
		t.Fatalf("%d chunks for 3 runs of writes", len(c.log))
	}
	read := func(from int) (string, int) {
		chunks, next, _ := c.Output(from)
		var sb strings.Builder
		for _, ch := range chunks {
			sb.WriteString(ch.Stream[:3] + ":" + string(ch.Data) + " ")
		}
		return sb.String(), next
	}
	got, next := read(998)
	if got != "std:aa std:EE std:bc " || next != 1004 {
		t.Fatalf("from 998: %q next %d", got, next)
	}
	if got, next := read(1001); got != "std:E std:bc " || next != 1004 {
		t.Fatalf("from 1001: %q next %d", got, next)
	}
	if got, next := read(1004); got != "" || next != 1004 {
		t.Fatalf("at the end: %q next %d", got, next)
	}
	// A reader's bytes never change when more output joins their chunk.
	chunks, _, _ := c.Output(1002)
	out.Write([]byte("d"))
	if string(chunks[0].Data) != "bc" {
		t.Fatalf("a reader's chunk changed: %q", chunks[0].Data)
	}
	if got, _ := read(1002); got != "std:bcd " {
		t.Fatalf("after more output: %q", got)
	}
	// A large write is one chunk, never split or joined past the bound.
	out.Write(make([]byte, maxChunk))
	if n := len(c.log); n != 4 {
		t.Fatalf("%d chunks", n)
	}
}
