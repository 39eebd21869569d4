package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/clitest"
)

// remote runs the runbox binary with stdin and without the local --init
// that runbox() adds (a remote run takes none).
func remote(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(runboxBin, args...)
	cmd.Env = append(os.Environ(), "RUNBOX_SERVER=")
	r := clitest.Run(t, cmd, stdin)
	return cliResult{r.Code, r.Stdout, r.Stderr}
}

// TestRemote runs `runbox run --server` and `runbox shell --server`
// against a real `runbox serve`: the output, stdin and exit codes are a
// local run's.
func TestRemote(t *testing.T) {
	needRoot(t)
	_, addr, _ := startServe(t, "--max-boxes", "2")
	url := "http://" + addr
	for _, tc := range []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string
		stderr string // a substring
	}{
		{"echo", "", []string{"run", "--server", url, "--", "echo", "hi"}, 0, "hi\n", ""},
		{"exit code and stderr", "", []string{"run", "--server", url, "--", "sh", "-c", "echo out; echo err >&2; exit 3"}, 3, "out\n", "err\n"},
		{"stdin and env", "abc\n", []string{"run", "--server", url, "--env", "X=1", "--", "sh", "-c", "read l; echo $l$X"}, 0, "abc1\n", ""},
		{"signal", "", []string{"run", "--server", url, "--", "sh", "-c", "kill -SEGV $$"}, 128 + 11, "", ""},
		{"time limit", "", []string{"run", "--server", url, "--wall-time", "300ms", "--", "sleep", "5"}, 124, "", "time"},
		{"cannot execute", "", []string{"run", "--server", url, "--", "/no/such/program"}, 127, "", ""},
		{"refused limit", "", []string{"run", "--server", url, "--wall-time", "1h", "--", "true"}, 2, "", "body.limits.wall_time_ms"},
		{"local-only flag", "", []string{"run", "--server", url, "--stack", "1MiB", "--", "true"}, 2, "", "--stack is not available with --server"},
		{"bad server URL", "", []string{"run", "--server", "ftp://x", "--", "true"}, 2, "", "--server"},
		{"shell without a terminal", "pong\n", []string{"shell", "--server", url, "--", "sh", "-c", "read x; echo $x; exit 5"}, 5, "pong\n", ""},
		{"default shell", "echo $0 here\n", []string{"shell", "--server", url}, 0, "/bin/bash here\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := remote(t, tc.stdin, tc.args...)
			if r.code != tc.code || r.stdout != tc.stdout || !strings.Contains(r.stderr, tc.stderr) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d, %q, stderr with %q", r.code, r.stdout, r.stderr, tc.code, tc.stdout, tc.stderr)
			}
			if tc.code == 2 && strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("a usage error is one line: %q", r.stderr)
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		r := remote(t, "", "run", "--server", url, "--json", "--", "sh", "-c", "echo x; exit 4")
		var res struct {
			Status   string `json:"status"`
			ExitCode int    `json:"exit_code"`
			Stdout   string `json:"stdout"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 0 {
			t.Fatalf("exit %d, stdout %q: %v", r.code, r.stdout, err)
		}
		if res.Status != "runtime_error" || res.ExitCode != 4 || res.Stdout != "x\n" {
			t.Errorf("result %+v", res)
		}
	})
	t.Run("environment variable", func(t *testing.T) {
		cmd := exec.Command(runboxBin, "run", "--", "echo", "via env")
		cmd.Env = append(os.Environ(), "RUNBOX_SERVER="+url)
		out, err := cmd.Output()
		if err != nil || string(out) != "via env\n" {
			t.Fatalf("%q, %v", out, err)
		}
	})
}

// TestRemoteShellOnATerminal runs `runbox shell --server` in a tmux window:
// the box's terminal has the window's size and follows it, and runbox
// exits with the shell's code.
func TestRemoteShellOnATerminal(t *testing.T) {
	needRoot(t)
	bin, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("requires tmux")
	}
	_, addr, _ := startServe(t, "--max-boxes", "2")
	conf := filepath.Join(t.TempDir(), "tmux.conf")
	if err := os.WriteFile(conf, []byte("set -g status off\nset -g remain-on-exit on\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &tmux{t: t, bin: bin, sock: filepath.Join(t.TempDir(), "tmux.sock")}
	// As startShell does, without the local --init.
	line := []string{"/bin/sh", "-c", `"$@"; rc=$?; echo "runbox exited with $rc"; exit $rc`, "sh",
		runboxBin, "shell", "--server", "http://" + addr}
	m.run("-f", conf, "new-session", "-d", "-s", "shell", "-x", "100", "-y", "30", shellQuote(line))
	t.Cleanup(func() { _ = exec.Command(bin, "-S", m.sock, "kill-server").Run() })

	m.waitScreen(`(?m)\$$`, 20*time.Second)
	m.keys("echo $((6*7)); test -t 0 && echo on-a-tty", true)
	m.waitScreen(`(?m)^on-a-tty$`, 10*time.Second)
	m.keys("stty size", true)
	m.waitScreen(`(?m)^30 100$`, 10*time.Second)
	m.run("resize-window", "-t", "shell", "-x", "120", "-y", "40")
	deadline := time.Now().Add(10 * time.Second)
	for !regexp.MustCompile(`(?m)^40 120$`).MatchString(m.screen()) {
		if time.Now().After(deadline) {
			t.Fatalf("stty size never showed 40 120:\n%s", m.screen())
		}
		m.keys("stty size", true)
		time.Sleep(300 * time.Millisecond)
	}
	m.keys("exit 7", true)
	m.waitScreen(`(?m)^runbox exited with [0-9]+$`, 20*time.Second)
	if !strings.Contains(m.screen(), "runbox exited with 7\n") {
		t.Fatalf("runbox shell did not exit with 7:\n%s", m.screen())
	}
}
