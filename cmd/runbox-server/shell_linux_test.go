package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestShellUsageErrors(t *testing.T) {
	cases := [][]string{
		{"shell", "--no-such-flag"},
		{"shell", "--wall-time", "0"},
		{"shell", "--memory", "lots"},
		{"shell", "--language", "intercal"},
		{"shell", "--env", "NOEQUALS"},
		{"shell", "--files", "/no/such/dir"},
		{"shell", "--", ""},
	}
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := runbox(t, "", args...)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2 (stderr %q)", r.code, r.stderr)
			}
			if lines := strings.Count(strings.TrimSpace(r.stderr), "\n"); lines != 0 || r.stderr == "" {
				t.Fatalf("want one line on stderr, got %q", r.stderr)
			}
		})
	}
	if r := runbox(t, "", "shell", "-h"); r.code != 0 || !strings.Contains(r.stderr, "-language") {
		t.Fatalf("shell -h: exit %d %q", r.code, r.stderr)
	}
}

// Without a terminal, runbox shell is runbox run in a session box: the
// default shell reads its commands from stdin, or COMMAND runs; exit codes
// as runbox run's.
func TestShellWithoutTerminal(t *testing.T) {
	needRoot(t)
	shell := func(stdin string, args ...string) cliResult {
		t.Helper()
		return runbox(t, stdin, append([]string{"shell", "--init", initBin}, args...)...)
	}
	r := shell("echo $((6*7)); echo $GOFLAGS; echo oops >&2; exit 5\n", "--language", "go")
	if r.code != 5 || r.stdout != "42\n-buildvcs=false\n" || r.stderr != "oops\n" {
		t.Fatalf("default shell: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	r = shell("", "--language", "go", "--env", "GOFLAGS=mine", "--", "/bin/sh", "-c", "echo $GOFLAGS")
	if r.code != 0 || r.stdout != "mine\n" {
		t.Fatalf("--env over --language: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	r = shell("", "--wall-time", "200ms", "--", "sleep", "10")
	if r.code != exitTimeLimit {
		t.Fatalf("time limit: exit %d stderr %q", r.code, r.stderr)
	}
	r = shell("", "--", "/bin/sh", "-c", "kill -TERM $$")
	if r.code != 128+15 {
		t.Fatalf("signal: exit %d stderr %q", r.code, r.stderr)
	}
}

// tmux drives runbox shell in a pane of a private tmux server, as a person
// at a terminal would.
type tmux struct {
	t    *testing.T
	bin  string
	sock string // the server's own socket path (-S), in the test's temporary directory
}

func (m *tmux) run(args ...string) string {
	m.t.Helper()
	out, err := exec.Command(m.bin, append([]string{"-S", m.sock}, args...)...).CombinedOutput()
	if err != nil {
		m.t.Fatalf("tmux %q: %v\n%s", args, err, out)
	}
	return string(out)
}

func (m *tmux) screen() string { return m.run("capture-pane", "-p", "-t", "shell") }

// keys types text (literally) and then, when enter, the Enter key.
func (m *tmux) keys(text string, enter bool) {
	m.t.Helper()
	if text != "" {
		m.run("send-keys", "-t", "shell", "-l", text)
	}
	if enter {
		m.run("send-keys", "-t", "shell", "Enter")
	}
}

// waitScreen waits until the screen matches re.
func (m *tmux) waitScreen(re string, timeout time.Duration) {
	m.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for {
		s := m.screen()
		if rx.MatchString(s) {
			return
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("the screen never matched %q:\n%s", re, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startShell starts `runbox shell ARGS` in a 100×30 tmux window whose pane
// stays when it ends; the server is killed (by its own socket) when the
// test ends. runbox runs under sh, which prints its exit status: tmux (3.3a
// at least) sometimes never learns a pane's exit status when the pane's
// terminal closes just before its process is reaped (pane_dead is 1 and
// pane_dead_status stays empty), whoever the process is.
func startShell(t *testing.T, args ...string) *tmux {
	t.Helper()
	needRoot(t)
	bin, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("requires tmux")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "tmux.conf")
	// No status line: the pane is the whole window. The pane stays once
	// runbox has exited, with its status.
	if err := os.WriteFile(conf, []byte("set -g status off\nset -g remain-on-exit on\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &tmux{t: t, bin: bin, sock: filepath.Join(t.TempDir(), "tmux.sock")}
	line := append([]string{"/bin/sh", "-c", `"$@"; rc=$?; echo "runbox exited with $rc"; exit $rc`, "sh",
		runboxBin, "shell", "--init", initBin}, args...)
	m.run("-f", conf, "new-session", "-d", "-s", "shell", "-x", "100", "-y", "30", shellQuote(line))
	t.Cleanup(func() {
		// Its socket goes with the test's temporary directory.
		_ = exec.Command(bin, "-S", m.sock, "kill-server").Run()
	})
	return m
}

func shellQuote(args []string) string {
	var b bytes.Buffer
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
	}
	return b.String()
}

func TestShellOnATerminal(t *testing.T) {
	m := startShell(t)
	const prompt = `(?m)\$$`
	m.waitScreen(prompt, 20*time.Second)
	if s := m.screen(); strings.Contains(s, "job control") || strings.Contains(s, "terminal process group") {
		t.Fatalf("the shell has no job control:\n%s", s)
	}

	m.keys("echo $((6*7))", true)
	m.waitScreen(`(?m)^42$`, 10*time.Second)

	m.keys("stty size", true)
	m.waitScreen(`(?m)^30 100$`, 10*time.Second)
	m.run("resize-window", "-t", "shell", "-x", "120", "-y", "40")
	// The new size travels by SIGWINCH to runbox and on to the box, the
	// keys by the pane's terminal: ask until the answer is the new size.
	deadline := time.Now().Add(10 * time.Second)
	for !regexp.MustCompile(`(?m)^40 120$`).MatchString(m.screen()) {
		if time.Now().After(deadline) {
			t.Fatalf("stty size never showed 40 120:\n%s", m.screen())
		}
		m.keys("stty size", true)
		time.Sleep(300 * time.Millisecond)
	}

	m.keys("clear; echo sleeping; sleep 100", true)
	m.waitScreen(`(?m)^sleeping$`, 10*time.Second)
	// sleep 100 would hold the prompt for 100 s. A ^C that reaches bash an
	// instant before it starts sleep is bash's (it abandons the line);
	// typed again while nothing shows, with the line after it, which ^C
	// flushes.
	after := regexp.MustCompile(`(?m)^after-42$`)
	deadline = time.Now().Add(15 * time.Second)
	for !after.MatchString(m.screen()) {
		if time.Now().After(deadline) {
			t.Fatalf("^C did not give the prompt back:\n%s", m.screen())
		}
		m.run("send-keys", "-t", "shell", "C-c")
		m.keys("echo after-$((6*7))", true)
		for i := 0; i < 10 && !after.MatchString(m.screen()); i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}

	m.keys("clear; sleep 100 &", true)
	m.waitScreen(`(?m)^\[1\] [0-9]+$`, 10*time.Second)
	m.keys("jobs", true)
	m.waitScreen(`(?m)^\[1\]\+ +Running +sleep 100 &$`, 10*time.Second)

	m.keys("exit 7", true)
	m.waitScreen(`(?m)^runbox exited with [0-9]+$`, 20*time.Second)
	if !strings.Contains(m.screen(), "runbox exited with 7\n") {
		t.Fatalf("runbox shell did not exit with 7:\n%s", m.screen())
	}
	// The pane's own status, when tmux has it (see startShell).
	deadline = time.Now().Add(10 * time.Second)
	for {
		end := strings.Fields(m.run("display", "-p", "-t", "shell", "dead=#{pane_dead} #{pane_dead_status} #{pane_dead_signal}"))
		if len(end) > 1 && end[0] == "dead=1" && end[1] != "7" {
			t.Fatalf("the pane ended with %q, want status 7:\n%s", end[1:], m.screen())
		}
		if len(end) > 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}
