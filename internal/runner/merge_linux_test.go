package runner

import (
	"strings"
	"testing"

	"github.com/runbox-dev/runbox/internal/jail"
)

// interleaved writes a and c to stdout and b to stderr, in three writes.
var interleaved = []string{"/bin/sh", "-c", "printf a; printf b >&2; printf c"}

func checkMerged(t *testing.T, what string, res *jail.Result) {
	t.Helper()
	if res == nil || res.Status != jail.StatusOK || string(res.Stdout) != "abc" || len(res.Stderr) != 0 {
		t.Fatalf("%s: %+v; want stdout abc, stderr empty", what, res)
	}
}

func TestMergeOutputRunAndCases(t *testing.T) {
	r, _ := newRunner(t)
	resp, err := r.Run(t.Context(), Request{Command: interleaved, MergeOutput: true})
	if err != nil {
		t.Fatal(err)
	}
	checkMerged(t, "run", resp.Run)
	resp, err = r.Run(t.Context(), Request{Command: interleaved, MergeOutput: true, Cases: []Case{{}, {}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range resp.Cases {
		checkMerged(t, "case", &resp.Cases[i].Result)
	}
}

// The compile step's streams stay apart; only the program's merge.
func TestMergeOutputLeavesTheCompile(t *testing.T) {
	r, _ := newRunner(t)
	if e, err := r.envs.Lookup("c"); err != nil || !e.Available {
		t.Skip("requires the c toolchain")
	}
	src := "#warning careful\n#include <unistd.h>\nint main(){write(1,\"a\",1);write(2,\"b\",1);write(1,\"c\",1);return 0;}"
	resp, err := r.Run(t.Context(), Request{Language: "c", Files: []File{{Name: "main.c", Content: []byte(src)}}, MergeOutput: true})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Compile == nil || !strings.Contains(string(resp.Compile.Stderr), "careful") || strings.Contains(string(resp.Compile.Stdout), "careful") {
		t.Fatalf("compile %+v: want the warning in stderr alone", resp.Compile)
	}
	checkMerged(t, "run", resp.Run)
}

func TestMergeOutputInABox(t *testing.T) {
	r, _ := newRunner(t)
	b, err := r.OpenBox(t.Context(), BoxSpec{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, req := range []Request{
		{Command: interleaved, MergeOutput: true},
		{Command: interleaved, MergeOutput: true, Cases: []Case{{}}},
	} {
		resp, err := b.Run(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Run != nil {
			checkMerged(t, "box run", resp.Run)
		}
		for i := range resp.Cases {
			checkMerged(t, "box case", &resp.Cases[i].Result)
		}
	}
	resp, err := b.Run(t.Context(), Request{Command: interleaved})
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Run.Stdout) != "ac" || string(resp.Run.Stderr) != "b" {
		t.Fatalf("not merged: stdout %q, stderr %q; want ac, b", resp.Run.Stdout, resp.Run.Stderr)
	}
}
