package jail_test

import (
	"strings"
	"testing"

	"github.com/runbox-dev/runbox/internal/jail"
)

// interleaved writes a, b, c in three separate writes: a and c to stdout, b
// to stderr. Only one descriptor shared by both streams keeps them in that
// order; two pipes read apart cannot.
const interleaved = "printf a; printf b >&2; printf c"

type mergeCase struct {
	name           string
	merge          bool
	stdout, stderr string
}

var mergeCases = []mergeCase{
	{"merged", true, "abc", ""},
	{"apart", false, "ac", "b"},
}

func checkMerge(t *testing.T, tc mergeCase, res jail.Result) {
	t.Helper()
	expectStatus(t, res, jail.StatusOK)
	if string(res.Stdout) != tc.stdout || string(res.Stderr) != tc.stderr {
		t.Fatalf("stdout %q, stderr %q; want %q, %q", res.Stdout, res.Stderr, tc.stdout, tc.stderr)
	}
}

func TestMergeOutputRun(t *testing.T) {
	needJail(t)
	for _, tc := range mergeCases {
		t.Run(tc.name, func(t *testing.T) {
			var tout, terr strings.Builder
			res := run(t, jail.Spec{Argv: sh(interleaved), MergeOutput: tc.merge, StdoutTee: &tout, StderrTee: &terr})
			checkMerge(t, tc, res)
			if tout.String() != tc.stdout || terr.String() != tc.stderr {
				t.Fatalf("tees got %q, %q; want %q, %q", tout.String(), terr.String(), tc.stdout, tc.stderr)
			}
		})
	}
}

// The merged stream is stdout's: it alone counts against the output limit,
// however much of it was written to stderr.
func TestMergeOutputCountsAsStdout(t *testing.T) {
	needJail(t)
	res := run(t, jail.Spec{Argv: sh("printf 0123; printf 4567 >&2; exec yes >&2"), MergeOutput: true,
		Limits: jail.Limits{Output: 8}})
	expectStatus(t, res, jail.StatusOutputLimit)
	if string(res.Stdout) != "01234567" || !res.StdoutTruncated || len(res.Stderr) != 0 || res.StderrTruncated {
		t.Fatalf("stdout %q (truncated %v), stderr %q (truncated %v); want the first 8 bytes of the merged stream in stdout",
			res.Stdout, res.StdoutTruncated, res.Stderr, res.StderrTruncated)
	}
}

func TestMergeOutputSession(t *testing.T) {
	s := openSession(t, jail.SessionSpec{})
	for _, tc := range mergeCases {
		t.Run(tc.name, func(t *testing.T) {
			checkMerge(t, tc, execIn(t, s, jail.CommandSpec{Argv: sh(interleaved), MergeOutput: tc.merge}))
		})
	}
	// A terminal is one stream already: merging changes nothing.
	res := execIn(t, s, jail.CommandSpec{Argv: sh(interleaved), MergeOutput: true, TTY: &jail.TTY{Rows: 24, Cols: 80}})
	expectStatus(t, res, jail.StatusOK)
	if !strings.Contains(string(res.Stdout), "abc") || len(res.Stderr) != 0 {
		t.Fatalf("with a tty: stdout %q, stderr %q; want abc in stdout", res.Stdout, res.Stderr)
	}
}
