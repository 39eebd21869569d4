package jail_test

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/jail"
)

func names(files []jail.File) []string {
	var n []string
	for _, f := range files {
		n = append(n, f.Name)
	}
	sort.Strings(n)
	return n
}

func TestCollectFiles(t *testing.T) {
	t.Run("matching regular files, with subdirectories and modes", func(t *testing.T) {
		res := run(t, jail.Spec{
			Argv:    sh("mkdir -p out/deep && echo a > out/a.txt && echo b > out/deep/b.txt && echo c > c.log && printf '#!/bin/sh\\n' > out/run.sh && chmod 755 out/run.sh"),
			Collect: &jail.Collect{Patterns: []string{"out/**"}},
		})
		expectStatus(t, res, jail.StatusOK)
		if got := strings.Join(names(res.Files), " "); got != "out/a.txt out/deep/b.txt out/run.sh" {
			t.Fatalf("collected %q", got)
		}
		for _, f := range res.Files {
			if f.Name == "out/run.sh" && f.Mode != 0o755 {
				t.Errorf("mode %o", f.Mode)
			}
			if f.Name == "out/a.txt" && string(f.Data) != "a\n" {
				t.Errorf("content %q", f.Data)
			}
		}
	})
	t.Run("symlinks, FIFOs and sockets are never followed or opened", func(t *testing.T) {
		res := run(t, jail.Spec{
			Argv: []string{"/usr/bin/python3", "-c", `
import os, socket
os.symlink("/etc/passwd", "passwd")
os.symlink("/", "root")
os.symlink("/proc/1", "init")
os.mkfifo("fifo")
s = socket.socket(socket.AF_UNIX); s.bind("sock")
open("real.txt", "w").write("ok")
`},
			Collect: &jail.Collect{Patterns: []string{"**"}, MaxTime: 5 * time.Second},
		})
		expectStatus(t, res, jail.StatusOK)
		if got := strings.Join(names(res.Files), " "); got != "real.txt" {
			t.Fatalf("collected %q; want only real.txt", got)
		}
	})
	t.Run("a background writer is dead before the walk", func(t *testing.T) {
		res := run(t, jail.Spec{
			Argv:    sh("(while :; do echo x >> grow; done) & sleep 0.1; echo done > done.txt"),
			Collect: &jail.Collect{Patterns: []string{"*"}, MaxBytes: 64 << 20},
			Limits:  jail.Limits{Disk: 32 << 20},
		})
		expectStatus(t, res, jail.StatusOK)
		if got := strings.Join(names(res.Files), " "); got != "done.txt grow" {
			t.Fatalf("collected %q", got)
		}
	})
	t.Run("bounds", func(t *testing.T) {
		res := run(t, jail.Spec{
			Argv:    sh("for i in 1 2 3 4 5 6 7 8 9; do echo $i > f$i; done; d=.; for i in $(seq 30); do d=$d/d; mkdir $d; done; echo deep > $d/x"),
			Collect: &jail.Collect{Patterns: []string{"**"}, MaxFiles: 3, MaxDepth: 5},
		})
		expectStatus(t, res, jail.StatusOK)
		if len(res.Files) != 3 || !res.FilesTruncated {
			t.Fatalf("%d files, truncated %v", len(res.Files), res.FilesTruncated)
		}
		res = run(t, jail.Spec{
			Argv:    sh("head -c 3000 /dev/zero > big; echo small > small"),
			Collect: &jail.Collect{Patterns: []string{"**"}, MaxBytes: 1000},
		})
		expectStatus(t, res, jail.StatusOK)
		if got := strings.Join(names(res.Files), " "); got != "small" || !res.FilesTruncated {
			t.Fatalf("collected %q, truncated %v", got, res.FilesTruncated)
		}
	})
	t.Run("a box killed by a limit returns no files", func(t *testing.T) {
		res := run(t, jail.Spec{
			Argv:    sh("echo partial > out.txt; sleep 10"),
			Collect: &jail.Collect{Patterns: []string{"*.txt"}},
			Limits:  jail.Limits{WallTime: 200 * time.Millisecond},
		})
		expectStatus(t, res, jail.StatusTimeLimit)
		if len(res.Files) != 0 {
			// The box is killed whole on a limit: nothing is collected.
			t.Fatalf("collected %v from a killed box", names(res.Files))
		}
	})
}
