package session

import (
	"context"
	"testing"

	"github.com/runbox-dev/runbox/internal/runner"
)

func TestMergeOutputCommand(t *testing.T) {
	m := manager(t, Config{})
	s := create(t, m, Spec{})
	const interleaved = "printf a; printf b >&2; printf c"
	for _, tc := range []struct {
		name           string
		merge          bool
		stdout, stderr string
	}{
		{"merged", true, "abc", ""},
		{"apart", false, "ac", "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, res, err := s.Exec(context.Background(), CommandSpec{Shell: interleaved, MergeOutput: tc.merge})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != runner.StatusOK || string(res.Stdout) != tc.stdout || string(res.Stderr) != tc.stderr {
				t.Fatalf("%s: stdout %q, stderr %q; want %q, %q", res.Status, res.Stdout, res.Stderr, tc.stdout, tc.stderr)
			}
			// The log, kept for attach, holds the same streams.
			if out, errs := c.Snapshot(); string(out) != tc.stdout || string(errs) != tc.stderr {
				t.Fatalf("log: stdout %q, stderr %q; want %q, %q", out, errs, tc.stdout, tc.stderr)
			}
		})
	}
}
