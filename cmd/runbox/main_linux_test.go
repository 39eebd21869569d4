package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/cli"
	"github.com/runbox-dev/runbox/internal/clitest"
	"github.com/runbox-dev/runbox/internal/layering"
)

// testVersion is the version the binaries are built with.
const testVersion = "fronttest"

// runboxBin is the front, built once as the Makefile builds it: runbox-init
// and runbox-server generated into the source tree, then embedded.
var runboxBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fronttest-")
	if err != nil {
		panic(err)
	}
	runboxBin = filepath.Join(dir, "runbox")
	for _, args := range [][]string{
		{"generate", "github.com/runbox-dev/runbox/internal/initbin"},
		{"generate", "github.com/runbox-dev/runbox/internal/serverbin"},
		{"build", "-trimpath", "-ldflags", "-s -w -X main.version=" + testVersion, "-o", runboxBin, "."},
	} {
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "VERSION="+testVersion)
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go %s: %v\n%s", strings.Join(args, " "), err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type cliResult struct {
	code           int
	stdout, stderr string
}

// runbox runs the front with args, env added to the environment and no
// RUNBOX_SERVER of the caller's.
func runbox(t *testing.T, env []string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(runboxBin, args...)
	cmd.Env = append(append(os.Environ(), "RUNBOX_SERVER="), env...)
	r := clitest.Run(t, cmd, "")
	return cliResult{r.Code, r.Stdout, r.Stderr}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("requires root (runbox run creates boxes)")
	}
}

// The front answers these itself.
func TestOwnCommands(t *testing.T) {
	for _, tc := range []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string
	}{
		{"version", []string{"version"}, 0, "runbox " + testVersion + "\n", ""},
		{"--version", []string{"--version"}, 0, "runbox " + testVersion + "\n", ""},
		{"help", []string{"help"}, 0, cli.Help, ""},
		{"-h", []string{"-h"}, 0, cli.Help, ""},
		{"no arguments", nil, cli.ExitUsage, "", cli.UsageLine + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runbox(t, nil, tc.args...)
			if r.code != tc.code || r.stdout != tc.stdout || r.stderr != tc.stderr {
				t.Fatalf("exit %d stdout %q stderr %q; want %d %q %q", r.code, r.stdout, r.stderr, tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}

// A mistake in the command line is one line and exit 2, whether the front
// or runbox-server (an unknown command) finds it.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run"}, "runbox run: no command given"},
		{[]string{"run", "--memory", "lots", "--", "true"}, "runbox run: "},
		{[]string{"run", "--no-such-flag", "--", "true"}, "runbox run: "},
		{[]string{"shell", "--language", "intercal"}, "runbox shell: --language: "},
		{[]string{"frobnicate"}, `runbox: unknown command "frobnicate"`},
		{[]string{"keys", "frobnicate"}, "usage: runbox keys "},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runbox(t, nil, tc.args...)
			if r.code != cli.ExitUsage || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.HasPrefix(r.stderr, tc.want) {
				t.Fatalf("exit %d stderr %q; want exit 2 and one line starting %q", r.code, r.stderr, tc.want)
			}
		})
	}
}

// Every spelling of --server that runbox-server takes, and RUNBOX_SERVER,
// hands run and shell to runbox-server: its remote path answers (here that
// the server cannot be reached), not the front.
func TestRemoteDelegated(t *testing.T) {
	const url = "http://127.0.0.1:1" // nothing listens on port 1
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"--server URL", nil, []string{"run", "--server", url, "--", "true"}, "runbox run: "},
		{"--server=URL", nil, []string{"run", "--server=" + url, "--", "true"}, "runbox run: "},
		{"-server URL", nil, []string{"run", "-server", url, "--", "true"}, "runbox run: "},
		{"RUNBOX_SERVER", []string{"RUNBOX_SERVER=" + url}, []string{"run", "--", "true"}, "runbox run: "},
		{"shell --server", nil, []string{"shell", "--server", url, "--", "true"}, "runbox shell: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runbox(t, tc.env, tc.args...)
			if r.code != cli.ExitInternalError || !strings.HasPrefix(r.stderr, tc.want) || !strings.Contains(r.stderr, "connection refused") {
				t.Fatalf("exit %d stderr %q; want exit 125 from runbox-server's remote %s", r.code, r.stderr, tc.args[0])
			}
		})
	}
}

func TestDelegatedKeys(t *testing.T) {
	dir := t.TempDir()
	r := runbox(t, nil, "keys", "list", "--data-dir", dir)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "NAME") {
		t.Fatalf("keys list: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

// initTrace runs the front with GODEBUG=inittrace=1 and returns the
// packages initialised, in the order the runtime reports them (the
// front's, then runbox-server's when it delegated).
func initTrace(t *testing.T, args ...string) []string {
	t.Helper()
	r := runbox(t, []string{"GODEBUG=inittrace=1"}, args...)
	var pkgs []string
	for _, line := range strings.Split(r.stderr, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "init" && strings.HasPrefix(f[2], "@") {
			pkgs = append(pkgs, f[1])
		}
	}
	if len(pkgs) < 5 {
		t.Fatalf("%s: %d packages in the init trace (exit %d):\n%s", strings.Join(args, " "), len(pkgs), r.code, r.stderr)
	}
	return pkgs
}

// runbox run initialises none of the server's packages; a delegated
// command does (the trace shows what it must).
func TestRunInitTrace(t *testing.T) {
	// The packages initialise before main, so this holds whether or not
	// the box can start here.
	run := initTrace(t, "run", "--", "/bin/true")
	for _, p := range run {
		if layering.ServerPackage(p) {
			t.Errorf("runbox run initialises %s", p)
		}
	}
	if !slices.Contains(run, "github.com/runbox-dev/runbox/internal/jail") {
		t.Errorf("runbox run does not initialise the jail: %v", run)
	}
	var server []string
	for _, p := range initTrace(t, "keys", "list", "--data-dir", t.TempDir()) {
		if layering.ServerPackage(p) {
			server = append(server, p)
		}
	}
	if !slices.Contains(server, "net/http") {
		t.Errorf("runbox keys initialises no net/http: it did not reach runbox-server, or the trace is not read (server packages: %v)", server)
	}
}

func TestRun(t *testing.T) {
	needRoot(t)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
	}{
		{"output", []string{"/bin/echo", "hi"}, 0, "hi\n"},
		{"exit code", []string{"/bin/sh", "-c", "exit 7"}, 7, ""},
		{"signal", []string{"/bin/sh", "-c", "kill -KILL $$"}, 128 + int(syscall.SIGKILL), ""},
		{"cannot execute", []string{"/no/such/program"}, cli.ExitCannotExecute, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runbox(t, nil, append([]string{"run", "--"}, tc.args...)...)
			if r.code != tc.code || r.stdout != tc.stdout {
				t.Fatalf("exit %d stdout %q stderr %q; want %d %q", r.code, r.stdout, r.stderr, tc.code, tc.stdout)
			}
		})
	}
	r := runbox(t, nil, "run", "--wall-time", "200ms", "--", "sleep", "10")
	if r.code != cli.ExitTimeLimit || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("time limit: exit %d stderr %q", r.code, r.stderr)
	}
}

// runbox serve started through the front is runbox-server in the same
// process: it answers on its listener, runs a remote `runbox run` given
// through the front, and ends on the SIGTERM sent to the front's pid.
func TestServe(t *testing.T) {
	needRoot(t)
	cmd := exec.Command(runboxBin, "serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir())
	addr, exited := clitest.Serve(t, cmd)
	url := "http://" + addr

	pid := cmd.Process.Pid
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); !strings.HasPrefix(exe, "/memfd:") {
		t.Errorf("pid %d runs %q, not runbox-server from a memfd", pid, exe)
	}
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); string(comm) != "runbox\n" {
		t.Errorf("pid %d is named %q, want runbox", pid, comm)
	}
	c := &http.Client{Timeout: time.Minute}
	resp, err := c.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	c.CloseIdleConnections()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: %d %s", resp.StatusCode, body)
	}
	if r := runbox(t, nil, "run", "--server", url, "--", "/bin/sh", "-c", "echo remote; exit 3"); r.code != 3 || r.stdout != "remote\n" {
		t.Fatalf("run --server: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}

	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(time.Minute):
		t.Fatal("runbox serve did not stop on SIGTERM")
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("runbox serve exited %d after SIGTERM", code)
	}
}
