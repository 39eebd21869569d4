package jail_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/jail"
)

func TestBombs(t *testing.T) {
	cases := []struct {
		name   string
		spec   jail.Spec
		status jail.Status
		// also lists other acceptable outcomes: a shell fork bomb may burn
		// out (every fork fails, the shells exit) before the clock runs out.
		also []jail.Status
	}{
		{"shell fork bomb", jail.Spec{Argv: []string{"/bin/sh", "forkbomb.sh"}, Files: []jail.File{script(t, "forkbomb.sh")},
			Limits: jail.Limits{Processes: 32, WallTime: 2 * time.Second}}, jail.StatusTimeLimit, []jail.Status{jail.StatusOK, jail.StatusRuntimeError}},
		{"python fork bomb", jail.Spec{Argv: []string{"/usr/bin/python3", "forkbomb.py"}, Files: []jail.File{script(t, "forkbomb.py")},
			Limits: jail.Limits{Processes: 32, WallTime: 2 * time.Second}}, jail.StatusTimeLimit, nil},
		{"thread bomb", jail.Spec{Argv: []string{"/usr/bin/python3", "threadbomb.py"}, Files: []jail.File{script(t, "threadbomb.py")},
			Limits: jail.Limits{Processes: 32, WallTime: 2 * time.Second}}, jail.StatusTimeLimit, nil},
		{"python memory bomb", jail.Spec{Argv: []string{"/usr/bin/python3", "membomb.py"}, Files: []jail.File{script(t, "membomb.py")},
			Limits: jail.Limits{Memory: 64 << 20}}, jail.StatusMemoryLimit, nil},
		{"C memory bomb", jail.Spec{Argv: []string{"./membomb"}, Files: []jail.File{cProg(t, "membomb")},
			Limits: jail.Limits{Memory: 64 << 20}}, jail.StatusMemoryLimit, nil},
		{"CPU spin ignoring SIGTERM", jail.Spec{Argv: []string{"/bin/sh", "spin_ignore_term.sh"}, Files: []jail.File{script(t, "spin_ignore_term.sh")},
			Limits: jail.Limits{CPUTime: 500 * time.Millisecond, WallTime: 10 * time.Second}}, jail.StatusTimeLimit, nil},
		{"sleep past the wall clock", jail.Spec{Argv: []string{"sleep", "100"},
			Limits: jail.Limits{WallTime: 300 * time.Millisecond}}, jail.StatusTimeLimit, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := hostLoad()
			res := run(t, tc.spec)
			if slices.Contains(tc.also, res.Status) {
				tc.status = res.Status
			}
			expectStatus(t, res, tc.status)
			if left := programProcesses(t); len(left) != 0 {
				t.Fatalf("program processes left when the run returned: %v", left)
			}
			if len(boxProcesses(t)) != 0 {
				t.Fatalf("box processes left: %v", boxProcesses(t))
			}
			if tc.status == jail.StatusMemoryLimit && res.Memory > tc.spec.Memory+(1<<20) {
				t.Errorf("peak memory %d above the limit %d", res.Memory, tc.spec.Memory)
			}
			if tc.status == jail.StatusTimeLimit && tc.spec.CPUTime > 0 && !strings.Contains(res.Message, "CPU") {
				t.Errorf("message %q should name the CPU limit", res.Message)
			}
			if tc.status == jail.StatusTimeLimit && tc.spec.CPUTime == 0 && !strings.Contains(res.Message, "wall") {
				t.Errorf("message %q should name the wall-clock limit", res.Message)
			}
			// The host is unaffected: it can still start processes.
			if after := hostLoad(); after.err != nil {
				t.Fatalf("host after the bomb: %v (before: %v)", after.err, before.err)
			}
		})
	}
	t.Run("processes limit holds", func(t *testing.T) {
		res := run(t, jail.Spec{Argv: []string{"/usr/bin/python3", "-c", `
import os
n = 0
try:
    while True:
        if os.fork() == 0:
            import time; time.sleep(30)
        n += 1
except OSError as e:
    print(n, e.errno)
`}, Limits: jail.Limits{Processes: 20}})
		expectStatus(t, res, jail.StatusOK)
		var n, errno int
		fmt.Sscan(string(res.Stdout), &n, &errno)
		// 20 tasks for the uid: python itself and 19 children.
		if n != 19 || errno != 11 {
			t.Fatalf("forked %d children before errno %d; want 19 before EAGAIN", n, errno)
		}
	})
}

type load struct{ err error }

// hostLoad checks the host can still fork and exec.
func hostLoad() load {
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	if err == nil {
		_, err = p.Wait()
	}
	return load{err}
}

func TestOutput(t *testing.T) {
	t.Run("1 GB flood is cut at the limit with runbox's memory bounded", func(t *testing.T) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		res := run(t, jail.Spec{Argv: sh("head -c 1000000000 /dev/zero"), Limits: jail.Limits{Output: 1 << 20}})
		runtime.ReadMemStats(&after)
		expectStatus(t, res, jail.StatusOutputLimit)
		if len(res.Stdout) != 1<<20 || !res.StdoutTruncated {
			t.Fatalf("kept %d bytes (truncated %v), want exactly the first 1MiB", len(res.Stdout), res.StdoutTruncated)
		}
		if grew := int64(after.TotalAlloc - before.TotalAlloc); grew > 64<<20 {
			t.Fatalf("runbox allocated %d bytes for a 1MiB capture", grew)
		}
	})
	t.Run("stdout and stderr flooded together do not deadlock", func(t *testing.T) {
		res := run(t, jail.Spec{
			Argv:   sh("i=0; while [ $i -lt 200 ]; do head -c 65536 /dev/zero; head -c 65536 /dev/zero >&2; i=$((i+1)); done"),
			Limits: jail.Limits{Output: 32 << 20},
		})
		expectStatus(t, res, jail.StatusOK)
		if len(res.Stdout) != 200*65536 || len(res.Stderr) != 200*65536 {
			t.Fatalf("got %d and %d bytes", len(res.Stdout), len(res.Stderr))
		}
	})
	t.Run("stderr past the limit", func(t *testing.T) {
		res := run(t, jail.Spec{Argv: sh("echo out; yes err >&2"), Limits: jail.Limits{Output: 1000}})
		expectStatus(t, res, jail.StatusOutputLimit)
		if string(res.Stdout) != "out\n" || len(res.Stderr) != 1000 || !res.StderrTruncated || res.StdoutTruncated {
			t.Fatalf("stdout %q, stderr %d bytes, truncated %v/%v", res.Stdout, len(res.Stderr), res.StdoutTruncated, res.StderrTruncated)
		}
	})
	t.Run("non-UTF-8 and NUL bytes pass through exactly", func(t *testing.T) {
		res := run(t, jail.Spec{Argv: sh(`printf 'a\000b\377\376c\n'`)})
		expectStatus(t, res, jail.StatusOK)
		if want := []byte("a\x00b\xff\xfec\n"); !bytes.Equal(res.Stdout, want) {
			t.Fatalf("got %q, want %q", res.Stdout, want)
		}
	})
	t.Run("closes stdout and exits 3", func(t *testing.T) {
		res := run(t, jail.Spec{Argv: sh("echo before; exec 1>&-; sleep 0.2; exit 3")})
		expectStatus(t, res, jail.StatusRuntimeError)
		if res.ExitCode != 3 || string(res.Stdout) != "before\n" {
			t.Fatalf("exit %d, stdout %q", res.ExitCode, res.Stdout)
		}
	})
	t.Run("stdin is fed, and a program that never reads it still ends", func(t *testing.T) {
		res := run(t, jail.Spec{Argv: []string{"wc", "-c"}, Stdin: bytes.NewReader(make([]byte, 3<<20))})
		expectStatus(t, res, jail.StatusOK)
		if strings.TrimSpace(string(res.Stdout)) != fmt.Sprint(3<<20) {
			t.Fatalf("wc counted %q", res.Stdout)
		}
		res = run(t, jail.Spec{Argv: []string{"true"}, Stdin: bytes.NewReader(make([]byte, 16<<20))})
		expectStatus(t, res, jail.StatusOK)
	})
}

func TestExitStatuses(t *testing.T) {
	cases := []struct {
		cmd    string
		status jail.Status
		code   int
		signal string
	}{
		{"exit 0", jail.StatusOK, 0, ""},
		{"exit 42", jail.StatusRuntimeError, 42, ""},
		{"kill -SEGV $$", jail.StatusSignaled, -1, "SIGSEGV"},
		{"kill -ABRT $$", jail.StatusSignaled, -1, "SIGABRT"},
	}
	for _, tc := range cases {
		t.Run(tc.cmd, func(t *testing.T) {
			res := run(t, jail.Spec{Argv: sh(tc.cmd)})
			expectStatus(t, res, tc.status)
			if res.ExitCode != tc.code {
				t.Errorf("exit code %d, want %d", res.ExitCode, tc.code)
			}
			if tc.signal != "" && jail.SignalName(res.Signal) != tc.signal {
				t.Errorf("signal %s, want %s", jail.SignalName(res.Signal), tc.signal)
			}
		})
	}
	t.Run("missing command", func(t *testing.T) {
		res := run(t, jail.Spec{Argv: []string{"no-such-command"}})
		expectStatus(t, res, jail.StatusRuntimeError)
		if res.ExitCode != 127 {
			t.Fatalf("exit %d, want 127", res.ExitCode)
		}
	})
}

func TestNothingSurvivesTheRun(t *testing.T) {
	needJail(t)
	// A daemon in its own session, and a child that holds stdout open: the
	// run still ends when the program does, and both are gone after it.
	marker := fmt.Sprintf("%d.%d", 50+os.Getpid()%40, os.Getpid())
	res := run(t, jail.Spec{Argv: []string{"/bin/sh", "daemonize.sh", marker}, Files: []jail.File{script(t, "daemonize.sh")},
		Limits: jail.Limits{WallTime: 30 * time.Second}})
	expectStatus(t, res, jail.StatusOK)
	if left := boxProcesses(t); len(left) != 0 {
		t.Fatalf("processes survived the run: %v", left)
	}
}

func TestCancelKillsTheBox(t *testing.T) {
	needJail(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := testJail.Run(ctx, jail.Spec{Argv: []string{"sleep", "60"}, Limits: jail.Limits{WallTime: time.Minute}})
		done <- err
	}()
	eventually(t, 10*time.Second, func() error {
		if len(boxProcesses(t)) == 0 {
			return fmt.Errorf("box not running yet")
		}
		return nil
	})
	cancel()
	if err := <-done; err == nil {
		t.Fatal("a cancelled run reported no error")
	}
	if left := boxProcesses(t); len(left) != 0 {
		t.Fatalf("processes survived cancellation: %v", left)
	}
}

// After many runs, everything the host counts is back where it was: no
// mount, cgroup, process, uid, descriptor or temporary file left behind.
func TestSoakLeavesNothing(t *testing.T) {
	needJail(t)
	runs := 1000
	if testing.Short() {
		runs = 100
	}
	before := snapshot(t)
	for i := 0; i < runs; i++ {
		res := run(t, jail.Spec{Argv: []string{"/bin/true"}})
		if res.Status != jail.StatusOK {
			t.Fatalf("run %d: %s %s", i, res.Status, res.Message)
		}
	}
	jail.WaitRetired(testJail)
	after := snapshot(t)
	if before != after {
		t.Fatalf("host state changed over %d runs:\nbefore %+v\nafter  %+v", runs, before, after)
	}
}

type hostState struct {
	Mounts, CgroupDirs, BoxProcs, OpenFDs, TmpEntries, Threads int
}

func snapshot(t *testing.T) hostState {
	t.Helper()
	var s hostState
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		s.Mounts = strings.Count(string(b), "\n")
	}
	for _, root := range []string{"/sys/fs/cgroup"} {
		s.CgroupDirs = countDirs(root, 7)
	}
	s.BoxProcs = len(boxProcesses(t))
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		s.OpenFDs = len(ents)
	}
	if ents, err := os.ReadDir(os.TempDir()); err == nil {
		s.TmpEntries = len(ents)
	}
	return s
}

func countDirs(dir string, depth int) int {
	if depth == 0 {
		return 0
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if e.IsDir() {
			n += 1 + countDirs(dir+"/"+e.Name(), depth-1)
		}
	}
	return n
}

// Two jails in one process keep apart: closing one leaves the other's
// cgroups alone.
func TestTwoJailsInOneProcess(t *testing.T) {
	needJail(t)
	other, err := jail.New(testConfig)
	if err != nil {
		t.Fatal(err)
	}
	res, err := other.Run(t.Context(), jail.Spec{Argv: []string{"/bin/true"}})
	if err != nil || res.Status != jail.StatusOK {
		t.Fatalf("%v %s", err, res.Message)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	res = run(t, jail.Spec{Argv: []string{"/bin/true"}})
	expectStatus(t, res, jail.StatusOK)
}
