package jail_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/jail"
)

// screen collects a terminal's output as it comes (StdoutTee), for a test
// that waits for what a person would wait for.
type screen struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *screen) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(b)
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// waitFor waits until the screen shows want after position from, and
// returns the position just past it.
func (s *screen) waitFor(t *testing.T, from int, want string) int {
	t.Helper()
	at := 0
	eventually(t, 10*time.Second, func() error {
		out := s.String()
		if i := strings.Index(out[min(from, len(out)):], want); i >= 0 {
			at = from + i + len(want)
			return nil
		}
		return fmt.Errorf("terminal never showed %q; it shows:\n%s", want, out)
	})
	return at
}

// ttyCommand starts a command on a terminal in the background; its
// result arrives on the returned channel. Input is typed with the
// returned writer (closing it is the end of input).
func ttyCommand(t *testing.T, s *jail.Session, cmd jail.CommandSpec) (*screen, io.WriteCloser, <-chan jail.Result) {
	t.Helper()
	scr := &screen{}
	in, typed := io.Pipe()
	t.Cleanup(func() { typed.Close() })
	if cmd.TTY == nil {
		cmd.TTY = &jail.TTY{Rows: 24, Cols: 80}
	}
	cmd.Stdin, cmd.StdoutTee = in, scr
	done := make(chan jail.Result, 1)
	go func() {
		res, err := s.Exec(t.Context(), cmd)
		if err != nil {
			t.Errorf("exec %q: %v (%s)", cmd.Argv, err, res.Message)
		}
		done <- res
	}()
	return scr, typed, done
}

func result(t *testing.T, done <-chan jail.Result) jail.Result {
	t.Helper()
	select {
	case res := <-done:
		return res
	case <-time.After(30 * time.Second):
		t.Fatal("the command did not end")
		return jail.Result{}
	}
}

func typeIn(t *testing.T, w io.Writer, s string) {
	t.Helper()
	if _, err := io.WriteString(w, s); err != nil {
		t.Fatalf("type %q: %v", s, err)
	}
}

var countRE = regexp.MustCompile(`count=\s*([0-9]+)`)

// crlf turns a terminal's line ends into plain ones.
func crlf(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }

// The command's stdio is one terminal; its output, echo included, is
// Stdout; its exit code passes through; input ends with the terminal's
// EOF, a last line without a newline included.
func TestSessionTTYIsATerminal(t *testing.T) {
	s := openSession(t, jail.SessionSpec{})
	res := execIn(t, s, jail.CommandSpec{TTY: &jail.TTY{Rows: 24, Cols: 80},
		Argv: sh(`test -t 0 && test -t 1 && test -t 2 && echo terminal; echo to-stderr >&2; stty size; exit 7`)})
	expectStatus(t, res, jail.StatusRuntimeError)
	if res.ExitCode != 7 {
		t.Fatalf("exit code %d, want 7", res.ExitCode)
	}
	if want := "terminal\nto-stderr\n24 80\n"; string(crlf(res.Stdout)) != want || len(res.Stderr) != 0 {
		t.Fatalf("stdout %q stderr %q, want stdout %q and no stderr", res.Stdout, res.Stderr, want)
	}

	cases := []struct {
		name, stdin, want string
	}{
		{"lines", "hello\nworld\n", "12"},
		{"last line without newline", "hello\nworld", "11"},
		{"empty", "", "0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := execIn(t, s, jail.CommandSpec{TTY: &jail.TTY{Rows: 24, Cols: 80}, Stdin: strings.NewReader(tc.stdin),
				Argv: sh(`echo "count=$(wc -c)"`), WallTime: 5 * time.Second})
			expectStatus(t, res, jail.StatusOK)
			if m := countRE.FindSubmatch(res.Stdout); m == nil || string(m[1]) != tc.want {
				t.Fatalf("wc -c counted %q, want %s", res.Stdout, tc.want)
			}
		})
	}
	// No Stdin: an end of file at once, not a terminal that waits forever.
	res = execIn(t, s, jail.CommandSpec{TTY: &jail.TTY{Rows: 24, Cols: 80}, Argv: []string{"cat"}, WallTime: 5 * time.Second})
	expectStatus(t, res, jail.StatusOK)
	alive(t, s)
}

// stty size reports the size given, and Resize changes it (the program
// gets SIGWINCH).
func TestSessionTTYResize(t *testing.T) {
	s := openSession(t, jail.SessionSpec{})
	ctl := &jail.Control{}
	if err := ctl.Resize(10, 10); !errors.Is(err, jail.ErrNotStarted) {
		t.Fatalf("resize before the start: %v, want ErrNotStarted", err)
	}
	scr, _, done := ttyCommand(t, s, jail.CommandSpec{TTY: &jail.TTY{Rows: 30, Cols: 100}, Control: ctl,
		Argv: []string{"/bin/bash", "-c", `trap 'echo winch $(stty size)' WINCH; echo size $(stty size); while :; do sleep 0.05; done`}})
	select {
	case <-ctl.Started():
	case <-time.After(10 * time.Second):
		t.Fatal("never started")
	}
	at := scr.waitFor(t, 0, "size 30 100")
	if err := ctl.Resize(40, 120); err != nil {
		t.Fatal(err)
	}
	scr.waitFor(t, at, "winch 40 120")
	if err := ctl.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	res := result(t, done)
	expectStatus(t, res, jail.StatusSignaled)
	if res.Signal != int(syscall.SIGTERM) {
		t.Fatalf("signal %d, want SIGTERM", res.Signal)
	}
	if err := ctl.Resize(10, 10); !errors.Is(err, jail.ErrCommandEnded) {
		t.Fatalf("resize after the end: %v, want ErrCommandEnded", err)
	}
	alive(t, s)
}

// ^C typed into the terminal interrupts the foreground job of an
// interactive shell, not the shell, which goes on.
func TestSessionTTYCtrlCInterruptsTheForegroundJob(t *testing.T) {
	s := openSession(t, jail.SessionSpec{})
	scr, typed, done := ttyCommand(t, s, jail.CommandSpec{Argv: []string{"/bin/sh", "-i"}, Env: []string{"PS1=$ "}, WallTime: time.Minute})
	at := scr.waitFor(t, 0, "$ ")
	typeIn(t, typed, "echo sleeping; sleep 100\n")
	at = scr.waitFor(t, at, "sleeping\r\n")
	// Typed again while nothing shows: a ^C that reaches the shell an
	// instant before it starts sleep may be lost (dash), and ^C flushes
	// what was typed after it. sleep 100 would hold the prompt for 100 s.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(scr.String()[at:], "after-42") {
		if time.Now().After(deadline) {
			t.Fatalf("^C did not interrupt sleep:\n%s", scr.String())
		}
		typeIn(t, typed, "\x03")
		typeIn(t, typed, "echo after-$((6*7))\n")
		for i := 0; i < 10 && !strings.Contains(scr.String()[at:], "after-42"); i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}
	typeIn(t, typed, "exit 3\n")
	res := result(t, done)
	expectStatus(t, res, jail.StatusRuntimeError)
	if res.ExitCode != 3 {
		t.Fatalf("exit code %d, want 3\n%s", res.ExitCode, res.Stdout)
	}
	alive(t, s)
}

// bash has job control on the terminal: background jobs, jobs, fg, ^Z and
// bg, and ^C of the foreground job.
func TestSessionTTYJobControl(t *testing.T) {
	s := openSession(t, jail.SessionSpec{})
	scr, typed, done := ttyCommand(t, s, jail.CommandSpec{Argv: []string{"/bin/bash", "--norc", "-i"}, Env: []string{"PS1=PROMPT> "}, WallTime: time.Minute})
	at := scr.waitFor(t, 0, "PROMPT> ")
	// A key that signals the foreground job is typed again until it
	// shows: bash prints fg's command line an instant before it hands
	// the terminal to the job, and a key typed in between reaches bash,
	// which ignores it.
	steps := []struct {
		keys, want string
		again      bool
	}{
		{"sleep 100 &\n", "PROMPT> ", false},
		{"jobs\n", "Running", false},
		{"fg\n", "sleep 100\r\n", false},
		{"\x1a", "Stopped", true}, // ^Z
		{"bg\n", "sleep 100 &", false},
		{"jobs\n", "Running", false},
		{"fg\n", "sleep 100\r\n", false},
		{"\x03", "PROMPT> ", true}, // ^C
		{"jobs; echo jobs-$(jobs | wc -l)\n", "jobs-0", false},
	}
	for _, st := range steps {
		typeIn(t, typed, st.keys)
		if st.again {
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(scr.String()[at:], st.want) && time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
				if !strings.Contains(scr.String()[at:], st.want) {
					typeIn(t, typed, st.keys)
				}
			}
		}
		at = scr.waitFor(t, at, st.want)
	}
	if out := scr.String(); strings.Contains(out, "no job control") || strings.Contains(out, "cannot set terminal process group") {
		t.Fatalf("bash has no job control:\n%s", out)
	}
	typeIn(t, typed, "exit 7\n")
	res := result(t, done)
	if res.ExitCode != 7 {
		t.Fatalf("exit code %d (%s), want 7\n%s", res.ExitCode, res.Status, res.Stdout)
	}
	if left := leftovers(t, s); len(left) > 0 {
		t.Fatalf("processes left behind: %q", left)
	}
}

// The output cap holds for a terminal that a program fills forever.
func TestSessionTTYOutputLimit(t *testing.T) {
	s := openSession(t, jail.SessionSpec{})
	res := execIn(t, s, jail.CommandSpec{TTY: &jail.TTY{Rows: 24, Cols: 80}, Argv: []string{"yes"}, Output: 64 << 10})
	expectStatus(t, res, jail.StatusOutputLimit)
	if len(res.Stdout) != 64<<10 || !res.StdoutTruncated {
		t.Fatalf("kept %d bytes (truncated %v), want %d", len(res.Stdout), res.StdoutTruncated, 64<<10)
	}
	alive(t, s)
}

// The terminal is the command's alone: it cannot type into it, attach a
// line discipline, reach the host's devpts by a name or reopen the slave,
// and holds no descriptor besides stdio.
func TestSessionTTYAttacks(t *testing.T) {
	s := openSession(t, jail.SessionSpec{Files: []jail.File{cProg(t, "ttyattack")}})
	res := execIn(t, s, jail.CommandSpec{TTY: &jail.TTY{Rows: 24, Cols: 80}, Argv: []string{"./ttyattack"}})
	expectStatus(t, res, jail.StatusOK)
	f := fields(t, crlf(res.Stdout))
	eperm := fmt.Sprint(int(syscall.EPERM))
	for name, want := range map[string]string{"isatty": "1", "tiocsti": eperm, "tiocsetd": eperm, "leaked_fds": "0"} {
		if f[name] != want {
			t.Errorf("%s %q, want %q", name, f[name], want)
		}
	}
	for _, name := range []string{"open_ptmx", "open_pts_ptmx", "open_pts_0", "reopen_slave"} {
		if f[name] == "" || f[name] == "0" {
			t.Errorf("%s succeeded (%q)", name, f[name])
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", res.Stdout)
	}
}

// Signal reaches a command without a terminal; the session goes on; a
// Control says when its command has not started or has ended, and serves
// one command.
func TestSessionControlSignal(t *testing.T) {
	s := openSession(t, jail.SessionSpec{})
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			ctl := &jail.Control{}
			if err := ctl.Signal(sig); !errors.Is(err, jail.ErrNotStarted) {
				t.Fatalf("signal before the start: %v, want ErrNotStarted", err)
			}
			done := make(chan jail.Result, 1)
			go func() {
				res, err := s.Exec(t.Context(), jail.CommandSpec{Argv: []string{"sleep", "100"}, Control: ctl})
				if err != nil {
					t.Errorf("exec: %v", err)
				}
				done <- res
			}()
			select {
			case <-ctl.Started():
			case <-time.After(10 * time.Second):
				t.Fatal("never started")
			}
			if err := ctl.Resize(10, 10); !errors.Is(err, jail.ErrNoTTY) {
				t.Fatalf("resize without a terminal: %v, want ErrNoTTY", err)
			}
			start := time.Now()
			if err := ctl.Signal(sig); err != nil {
				t.Fatal(err)
			}
			res := result(t, done)
			expectStatus(t, res, jail.StatusSignaled)
			if res.Signal != int(sig) || time.Since(start) > 10*time.Second {
				t.Fatalf("signal %d after %v, want %d at once", res.Signal, time.Since(start), sig)
			}
			if err := ctl.Signal(sig); !errors.Is(err, jail.ErrCommandEnded) {
				t.Fatalf("signal after the end: %v, want ErrCommandEnded", err)
			}
			if _, err := s.Exec(t.Context(), jail.CommandSpec{Argv: []string{"true"}, Control: ctl}); err == nil {
				t.Fatal("a Control served a second command")
			}
			alive(t, s)
		})
	}
	// SIGKILL is the whole command's, as a limit's kill is: what it
	// started in the background goes too.
	t.Run("SIGKILL", func(t *testing.T) {
		ctl := &jail.Control{}
		done := make(chan jail.Result, 1)
		go func() {
			res, _ := s.Exec(t.Context(), jail.CommandSpec{Argv: sh("sleep 100 & sleep 100 & wait"), Control: ctl})
			done <- res
		}()
		<-ctl.Started()
		if err := ctl.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		res := result(t, done)
		expectStatus(t, res, jail.StatusSignaled)
		if res.Signal != int(syscall.SIGKILL) {
			t.Fatalf("signal %d, want SIGKILL", res.Signal)
		}
		if left := leftovers(t, s); len(left) > 0 {
			t.Fatalf("processes left behind: %q", left)
		}
	})
	// A command that never starts never closes Started, and its Control
	// answers ErrCommandEnded once Exec has returned.
	t.Run("never started", func(t *testing.T) {
		ctl := &jail.Control{}
		res := execIn(t, s, jail.CommandSpec{Argv: []string{"no-such-command"}, Control: ctl})
		if res.ExitCode != 127 {
			t.Fatalf("exit code %d, want 127", res.ExitCode)
		}
		select {
		case <-ctl.Started():
			t.Fatal("Started closed for a command that never ran")
		default:
		}
		if err := ctl.Signal(syscall.SIGTERM); !errors.Is(err, jail.ErrCommandEnded) {
			t.Fatalf("signal after the end: %v, want ErrCommandEnded", err)
		}
	})
}

// A program starts with no signal ignored (the spawner ignores SIGINT and
// SIGHUP for itself): ^C and Signal(SIGINT) would do nothing otherwise.
func TestCommandsStartWithDefaultSignals(t *testing.T) {
	const show = "grep -E '^Sig(Ign|Blk):' /proc/self/status"
	want := "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
	res := run(t, jail.Spec{Argv: sh(show)})
	if string(res.Stdout) != want {
		t.Errorf("one-shot program: %q, want %q", res.Stdout, want)
	}
	s := openSession(t, jail.SessionSpec{})
	res = execIn(t, s, jail.CommandSpec{Argv: sh(show)})
	if string(res.Stdout) != want {
		t.Errorf("session command: %q, want %q", res.Stdout, want)
	}
}
