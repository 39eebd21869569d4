package jail_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/boxtest"
	"github.com/runbox-dev/runbox/internal/jail"
	"github.com/runbox-dev/runbox/internal/testwait"
)

// The jail every test shares, and the attack programs compiled for it.
var (
	testJail   *jail.Jail
	testConfig jail.Config
	skipReason string
	progDir    string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	// Fuzzing (go test -fuzz) runs only its target, which needs no box, in
	// worker processes that each run TestMain: building runbox-init and
	// opening a jail in every one of them makes them late to answer the
	// coordinator, which then fails with "context deadline exceeded".
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		skipReason = "fuzzing: no jail is opened"
		return m.Run()
	}
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		skipReason = "fuzzing: no jail is opened"
		return m.Run()
	}
	be, reason, err := boxtest.Open()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if be == nil {
		skipReason = reason
		return m.Run()
	}
	progDir = filepath.Join(be.Dir, "progs")
	if err := os.Mkdir(progDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := exec.LookPath("gcc"); err == nil {
		srcs, _ := filepath.Glob("testdata/*.c")
		for _, src := range srcs {
			out := filepath.Join(progDir, strings.TrimSuffix(filepath.Base(src), ".c"))
			if b, err := exec.Command("gcc", "-O1", "-o", out, src).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "compile %s: %v\n%s", src, err, b)
				return 1
			}
		}
	}
	testJail, testConfig = be.Jail, be.Config
	code := m.Run()
	if err := be.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close jail:", err)
		code = 1
	}
	return code
}

func needJail(t *testing.T) *jail.Jail {
	t.Helper()
	if testJail == nil {
		t.Skip(skipReason)
	}
	return testJail
}

// cProg returns a compiled attack program from testdata as a workspace file.
func cProg(t *testing.T, name string) jail.File {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(progDir, name))
	if err != nil {
		t.Skipf("requires gcc to build testdata/%s.c", name)
	}
	return jail.File{Name: name, Data: b, Mode: 0o755}
}

// script returns a testdata file as a workspace file.
func script(t *testing.T, name string) jail.File {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return jail.File{Name: name, Data: b, Mode: 0o755}
}

func sh(cmd string) []string { return []string{"/bin/sh", "-c", cmd} }

// run runs a spec and fails the test on a service error.
func run(t *testing.T, spec jail.Spec) jail.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := needJail(t).Run(ctx, spec)
	if err != nil {
		t.Fatalf("run %q: %v", spec.Argv, err)
	}
	return res
}

func expectStatus(t *testing.T, res jail.Result, want jail.Status) {
	t.Helper()
	if res.Status != want {
		t.Fatalf("status %s (%s), want %s\nstdout: %.2000s\nstderr: %.2000s", res.Status, res.Message, want, res.Stdout, res.Stderr)
	}
}

// fields parses "name value" lines printed by the attack programs.
func fields(t *testing.T, out []byte) map[string]string {
	t.Helper()
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok {
			m[k] = v
		}
	}
	return m
}

// boxProcesses lists host processes running as any box uid in a cgroup of
// this test process's jails (boxes of other test binaries running at the
// same time are theirs to check).
func boxProcesses(t *testing.T) []string {
	t.Helper()
	// A run returns before its box's init has exited (retire): wait for
	// the shared jail's boxes to be gone.
	if testJail != nil {
		jail.WaitRetired(testJail)
	}
	return processesOfBoxIDs(t, false)
}

// programProcesses lists the processes of a box's program ids (not init's):
// none may be left when a run returns, before its box is retired.
func programProcesses(t *testing.T) []string {
	t.Helper()
	return processesOfBoxIDs(t, true)
}

func processesOfBoxIDs(t *testing.T, programOnly bool) []string {
	t.Helper()
	lo, hi := testConfig.UIDBase, testConfig.UIDBase+2*testConfig.UIDSlots
	ours := "/" + testConfig.CgroupPrefix + strconv.Itoa(os.Getpid()) + "-"
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if cg, err := os.ReadFile("/proc/" + e.Name() + "/cgroup"); err != nil || !strings.Contains(string(cg), ours) {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
				if uid, _ := strconv.Atoi(f[1]); uid >= lo && uid < hi && (!programOnly || (uid-lo)%2 == 1) {
					out = append(out, e.Name()+" "+line)
				}
			}
		}
	}
	return out
}

// eventually polls until a condition holds (testwait.Eventually).
var eventually = testwait.Eventually
