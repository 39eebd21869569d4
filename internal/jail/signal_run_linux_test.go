package jail_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/jail"
	"github.com/runbox-dev/runbox/internal/jail/boxinit"
)

// A run's program gets the signals its Control sends, through the box's
// init: a caught one runs its handler, SIGKILL and SIGSTOP (which init
// cannot catch) arrive as themselves.
func TestRunSignals(t *testing.T) {
	j := needJail(t)
	for _, tc := range []struct {
		name   string
		script string
		sigs   []syscall.Signal
		check  func(t *testing.T, res jail.Result)
	}{
		{name: "caught", script: `trap 'echo got INT; exit 3' INT; echo ready; while :; do sleep 0.05; done`,
			sigs: []syscall.Signal{syscall.SIGINT}, check: func(t *testing.T, res jail.Result) {
				if res.ExitCode != 3 || !strings.Contains(string(res.Stdout), "got INT") {
					t.Fatalf("exit %d, stdout %q", res.ExitCode, res.Stdout)
				}
			}},
		{name: "SIGKILL", script: `trap '' INT TERM; echo ready; while :; do sleep 0.05; done`,
			sigs: []syscall.Signal{syscall.SIGKILL}, check: func(t *testing.T, res jail.Result) {
				if res.Status != jail.StatusSignaled || res.Signal != int(syscall.SIGKILL) {
					t.Fatalf("status %s signal %d: %s", res.Status, res.Signal, res.Message)
				}
			}},
		{name: "SIGSTOP then SIGCONT", script: `trap 'echo cont; exit 4' CONT; echo ready; while :; do sleep 0.05; done # stop-marker`,
			sigs: []syscall.Signal{syscall.SIGSTOP, syscall.SIGCONT}, check: func(t *testing.T, res jail.Result) {
				if res.ExitCode != 4 || !strings.Contains(string(res.Stdout), "cont") {
					t.Fatalf("exit %d, stdout %q", res.ExitCode, res.Stdout)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctrl := &jail.Control{}
			ready := make(chan struct{})
			tee := &lineWatcher{want: "ready", seen: ready}
			done := make(chan jail.Result, 1)
			go func() {
				res, err := j.Run(context.Background(), jail.Spec{Argv: sh(tc.script), Control: ctrl, StdoutTee: tee,
					Limits: jail.Limits{WallTime: 20 * time.Second}})
				if err != nil {
					t.Error(err)
				}
				done <- res
			}()
			for _, c := range []<-chan struct{}{ready, ctrl.Started()} {
				select {
				case <-c:
				case <-time.After(20 * time.Second):
					t.Fatal("the program did not start")
				}
			}
			for _, s := range tc.sigs {
				if err := ctrl.Signal(s); err != nil {
					t.Fatalf("signal %v: %v", s, err)
				}
				if s == syscall.SIGSTOP {
					// Two signals sent at once may arrive in either order
					// (see boxinit): the stop is seen before the next.
					eventually(t, 10*time.Second, func() error {
						if st := stateOf("stop-marker"); st != "T" {
							return fmt.Errorf("the program's state is %q, not stopped", st)
						}
						return nil
					})
				}
			}
			res := <-done
			tc.check(t, res)
			if err := ctrl.Signal(syscall.SIGINT); !errors.Is(err, jail.ErrCommandEnded) {
				t.Errorf("a signal after the end: %v", err)
			}
		})
	}
}

// A program cannot use its init's forwarding to signal init itself or
// anything else: it runs as another uid, and kill(1) is refused.
func TestRunProgramCannotSignalInit(t *testing.T) {
	needJail(t)
	res := run(t, jail.Spec{Argv: sh(`for s in INT TERM USR1 40 41; do kill -s $s 1 2>/dev/null && echo "sent $s"; kill -$s 1 2>/dev/null && echo "sent $s"; done; echo done`)})
	expectStatus(t, res, jail.StatusOK)
	if string(res.Stdout) != "done\n" {
		t.Fatalf("the program signalled init: %q", res.Stdout)
	}
}

// lineWatcher closes seen once a written line equals want.
type lineWatcher struct {
	want string
	seen chan struct{}
	buf  strings.Builder
	done bool
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if !w.done && strings.Contains(w.buf.String(), w.want+"\n") {
		w.done = true
		close(w.seen)
	}
	return len(p), nil
}

// stateOf is the state letter (R, S, T…) of the host's process whose
// command line holds marker ("" when there is none).
func stateOf(marker string) string {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		cmd, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || !strings.Contains(string(cmd), marker) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) {
			return string(stat[i+2])
		}
	}
	return ""
}

// outputBeforeStart is a tee that records whether the first output came
// before its Control had begun.
type outputBeforeStart struct {
	ctl   *jail.Control
	first chan bool // whether the Control had begun at the first write
	once  sync.Once
}

func (w *outputBeforeStart) Write(p []byte) (int, error) {
	w.once.Do(func() {
		select {
		case <-w.ctl.Started():
			w.first <- true
		default:
			w.first <- false
		}
	})
	return len(p), nil
}

// A client that has seen a program's output can signal it: the output's
// live copy never comes before the Control has begun, in a run or in a
// session (the output and the start report travel on pipes of their own).
func TestOutputAfterControlBegins(t *testing.T) {
	const tries = 20
	check := func(t *testing.T, exec func(spec jail.CommandSpec) (jail.Result, error)) {
		for range tries {
			w := &outputBeforeStart{ctl: &jail.Control{}, first: make(chan bool, 1)}
			done := make(chan error, 1)
			go func() {
				_, err := exec(jail.CommandSpec{Argv: sh("echo out; exec sleep 100"), Control: w.ctl, StdoutTee: w})
				done <- err
			}()
			select {
			case began := <-w.first:
				if !began {
					t.Fatal("the output's first bytes came before the Control had begun")
				}
			case <-time.After(20 * time.Second):
				t.Fatal("no output")
			}
			if err := w.ctl.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("signal after the first output: %v", err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Run("run", func(t *testing.T) {
		j := needJail(t)
		check(t, func(c jail.CommandSpec) (jail.Result, error) {
			return j.Run(context.Background(), jail.Spec{Argv: c.Argv, Control: c.Control, StdoutTee: c.StdoutTee,
				Limits: jail.Limits{WallTime: 20 * time.Second}})
		})
	})
	t.Run("session", func(t *testing.T) {
		s := openSession(t, jail.SessionSpec{})
		check(t, func(c jail.CommandSpec) (jail.Result, error) {
			return s.Exec(context.Background(), c)
		})
	})
}

// A box's init builds its root with a coarse timer slack (boxinit's
// boxSlack); the program, and a session's commands, get the kernel's
// usual 50 µs back, so that their sleeps and timeouts are what they would
// be outside a box.
func TestProgramTimerSlack(t *testing.T) {
	const want = "50000"
	res := run(t, jail.Spec{Argv: sh("cat /proc/self/timerslack_ns; sh -c 'cat /proc/self/timerslack_ns'")})
	if got := strings.Fields(string(res.Stdout)); len(got) != 2 || got[0] != want || got[1] != want {
		t.Fatalf("the program's timer slack %q (stderr %q), want %s for it and its children", res.Stdout, res.Stderr, want)
	}
	s := openSession(t, jail.SessionSpec{})
	out := execIn(t, s, jail.CommandSpec{Argv: []string{"cat", "/proc/self/timerslack_ns"}})
	if got := strings.TrimSpace(string(out.Stdout)); got != want {
		t.Fatalf("a session command's timer slack %q (stderr %q), want %s", got, out.Stderr, want)
	}
}

// A session's init serves its commands with the usual timer slack on
// every thread (read from the host, through the waiting first stage's
// parent): its waits are not deferred by the slack it built the root with.
func TestInitTimerSlack(t *testing.T) {
	s := openSession(t, jail.SessionSpec{})
	execIn(t, s, jail.CommandSpec{Argv: []string{"true"}})
	var initPID string
	eventually(t, 10*time.Second, func() error {
		for _, line := range programProcesses(t) {
			pid, _, _ := strings.Cut(line, " ")
			comm, _ := os.ReadFile("/proc/" + pid + "/comm")
			if strings.TrimSpace(string(comm)) != boxinit.StageName {
				continue
			}
			status, err := os.ReadFile("/proc/" + pid + "/status")
			if err != nil {
				continue
			}
			for _, l := range strings.Split(string(status), "\n") {
				if v, ok := strings.CutPrefix(l, "PPid:"); ok {
					initPID = strings.TrimSpace(v)
					return nil
				}
			}
		}
		return errors.New("no first stage waiting in the session")
	})
	tasks, err := os.ReadDir("/proc/" + initPID + "/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/" + task.Name() + "/timerslack_ns")
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(b)); got != "50000" {
			t.Errorf("init (pid %s) thread %s has a timer slack of %s ns, want 50000", initPID, task.Name(), got)
		}
	}
	if len(tasks) < 2 {
		t.Fatalf("init (pid %s) has %d threads: not the Go program it should be", initPID, len(tasks))
	}
}
