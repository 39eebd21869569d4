package session

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/boxtest"
	"github.com/runbox-dev/runbox/internal/env"
	"github.com/runbox-dev/runbox/internal/runner"
)

var (
	testEnv    *boxtest.Env
	skipReason string
	testRunner *runner.Runner
)

func TestMain(m *testing.M) {
	os.Exit(boxtest.Main(m, func(be *boxtest.Env, reason string) error {
		testEnv, skipReason = be, reason
		if be == nil {
			return nil
		}
		reg, err := env.Load(env.Defaults())
		if err != nil {
			return err
		}
		testRunner = runner.New(be.Jail, reg, nil)
		return nil
	}))
}

func manager(t *testing.T, cfg Config) *Manager {
	t.Helper()
	if testEnv == nil {
		t.Skip(skipReason)
	}
	m := NewManager(testRunner, cfg, slog.New(slog.DiscardHandler))
	t.Cleanup(m.Close)
	return m
}

func create(t *testing.T, m *Manager, spec Spec) *Session {
	t.Helper()
	s, err := m.Create(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func exec(t *testing.T, s *Session, spec CommandSpec) *runner.Result {
	t.Helper()
	_, res, err := s.Exec(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestIDsAreRandom128Bits(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newID()
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
}

func TestSessionCapAndDelete(t *testing.T) {
	m := manager(t, Config{MaxSessions: 2})
	a := create(t, m, Spec{})
	create(t, m, Spec{})
	if _, err := m.Create(context.Background(), Spec{}); !errors.Is(err, ErrTooMany) {
		t.Fatalf("third session: %v, want ErrTooMany", err)
	}
	if err := m.Delete(a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get(a.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted session: %v", err)
	}
	if _, _, err := a.Exec(context.Background(), CommandSpec{Argv: []string{"true"}}); !errors.Is(err, ErrEnded) {
		t.Fatalf("command in a deleted session: %v, want ErrEnded", err)
	}
	create(t, m, Spec{}) // the slot is free again
	if err := m.Delete("0123"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
}

func TestTimeoutsAboveMaximaRefused(t *testing.T) {
	m := manager(t, Config{MaxIdleTimeout: time.Minute, MaxLifetime: time.Hour})
	for _, spec := range []Spec{{IdleTimeout: 2 * time.Minute}, {Lifetime: 2 * time.Hour}} {
		if _, err := m.Create(context.Background(), spec); !errors.Is(err, ErrTimeout) {
			t.Fatalf("%+v: %v, want ErrTimeout", spec, err)
		}
	}
}

func TestEnvCwdAndUpdate(t *testing.T) {
	m := manager(t, Config{})
	s := create(t, m, Spec{Env: []string{"A=1", "B=2"}, Cwd: "/tmp"})
	res := exec(t, s, CommandSpec{Shell: `echo "$A $B $C" $(pwd)`, Env: []string{"C=3"}})
	if got := string(res.Stdout); got != "1 2 3 /tmp\n" {
		t.Fatalf("got %q", got)
	}
	cwd := "/box"
	if err := s.Update([]string{"A=9"}, []string{"B"}, &cwd, nil); err != nil {
		t.Fatal(err)
	}
	res = exec(t, s, CommandSpec{Shell: `echo "$A ${B-unset}" $(pwd)`})
	if got := string(res.Stdout); got != "9 unset /box\n" {
		t.Fatalf("after update: %q", got)
	}
}

func TestIdleTimeoutEndsSession(t *testing.T) {
	m := manager(t, Config{})
	idle := create(t, m, Spec{IdleTimeout: 500 * time.Millisecond})
	busy := create(t, m, Spec{IdleTimeout: 500 * time.Millisecond})
	c, err := busy.Start(context.Background(), CommandSpec{Argv: []string{"sleep", "4"}, Background: true,
		Limits: runner.Limits{WallTime: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	boxtest.WaitUntil(t, 10*time.Second, func() bool {
		_, err := m.Get(idle.ID)
		return errors.Is(err, ErrNotFound)
	})
	// A session whose command runs is not idle.
	if _, err := m.Get(busy.ID); err != nil {
		t.Fatalf("a session with a running command expired: %v", err)
	}
	if _, err := c.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	res, _ := c.Result()
	if res.Status != runner.StatusOK {
		t.Fatalf("sleeper: %+v", res)
	}
	// Then it is idle, and ends.
	boxtest.WaitUntil(t, 10*time.Second, func() bool {
		_, err := m.Get(busy.ID)
		return errors.Is(err, ErrNotFound)
	})
}

func TestLifetimeEndsSessionWithRunningCommand(t *testing.T) {
	m := manager(t, Config{})
	s := create(t, m, Spec{Lifetime: 1500 * time.Millisecond})
	c, err := s.Start(context.Background(), CommandSpec{Argv: []string{"sleep", "100"}, Background: true,
		Limits: runner.Limits{WallTime: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, _ := c.Wait(ctx)
	if res == nil {
		t.Fatal("the command outlived its session's lifetime")
	}
	if res.Status == runner.StatusOK {
		t.Fatalf("the sleeper ended ok: %+v", res)
	}
	t.Logf("ended after %v: %s %s", time.Since(start), res.Status, res.Message)
	if _, err := m.Get(s.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("session still there: %v", err)
	}
}

func TestBackgroundOutputLogAndStdin(t *testing.T) {
	m := manager(t, Config{})
	s := create(t, m, Spec{})
	c, err := s.Start(context.Background(), CommandSpec{Shell: `while read l; do echo "out $l"; echo "err $l" >&2; done`,
		OpenStdin: true, Background: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"a", "b"} {
		if err := c.WriteStdin(context.Background(), []byte(l+"\n")); err != nil {
			t.Fatal(err)
		}
	}
	// Output arrives while it runs.
	boxtest.WaitUntil(t, 10*time.Second, func() bool {
		out, _ := c.Snapshot()
		return string(out) == "out a\nout b\n"
	})
	if err := c.CloseStdin(); err != nil {
		t.Fatal(err)
	}
	res, err := c.Wait(context.Background())
	if err != nil || res.Status != runner.StatusOK {
		t.Fatalf("%v %+v", err, res)
	}
	// The log replays everything in order, per stream, after the end.
	chunks, _, _ := c.Output(0)
	var out, errs strings.Builder
	for _, ch := range chunks {
		if ch.Stream == "stdout" {
			out.Write(ch.Data)
		} else {
			errs.Write(ch.Data)
		}
	}
	if out.String() != string(res.Stdout) || errs.String() != "err a\nerr b\n" {
		t.Fatalf("log %q / %q, result %q", out.String(), errs.String(), res.Stdout)
	}
	if err := c.WriteStdin(context.Background(), []byte("late\n")); !errors.Is(err, ErrStdinClosed) {
		t.Fatalf("stdin after close: %v", err)
	}
}

func TestCommandCapAndKeptCommands(t *testing.T) {
	m := manager(t, Config{MaxCommands: 2, KeptCommands: 3})
	s := create(t, m, Spec{})
	var running []*Command
	for range 2 {
		c, err := s.Start(context.Background(), CommandSpec{Argv: []string{"sleep", "100"}, Background: true,
			Limits: runner.Limits{WallTime: time.Minute}})
		if err != nil {
			t.Fatal(err)
		}
		running = append(running, c)
	}
	if _, err := s.Start(context.Background(), CommandSpec{Argv: []string{"true"}}); !errors.Is(err, ErrBusy) {
		t.Fatalf("third command: %v, want ErrBusy", err)
	}
	for _, c := range running {
		<-c.ctl.Started()
		if err := c.Signal(9); err != nil {
			t.Fatal(err)
		}
		c.Wait(context.Background())
	}
	for range 4 {
		exec(t, s, CommandSpec{Argv: []string{"true"}})
	}
	if n := len(s.Commands()); n != 3 {
		t.Fatalf("%d commands kept, want 3", n)
	}
}

func TestCloseEndsEverySession(t *testing.T) {
	if testEnv == nil {
		t.Skip(skipReason)
	}
	m := NewManager(testRunner, Config{}, slog.New(slog.DiscardHandler))
	a, err := m.Create(context.Background(), Spec{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.Start(context.Background(), CommandSpec{Argv: []string{"sleep", "100"}, Background: true, Limits: runner.Limits{WallTime: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a command outlived the manager's Close")
	}
	if _, err := m.Create(context.Background(), Spec{}); !errors.Is(err, ErrEnded) {
		t.Fatalf("create after close: %v", err)
	}
	if len(m.List()) != 0 {
		t.Fatal("sessions left after close")
	}
}
