package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/runbox-dev/runbox/internal/env"
	"github.com/runbox-dev/runbox/internal/jail"
)

// Defaults of runbox shell that differ from runbox run's: a person types
// into it, mostly idle, for a while. The CPU time covers the shell and
// everything it starts, so a forgotten busy loop ends within it; the
// output is everything the terminal shows over the whole shell, which the
// jail keeps in memory up to this bound.
const (
	shellWallTime = time.Hour
	shellCPUTime  = 15 * time.Minute
	shellOutput   = 64 << 20
)

const shellUsage = "runbox shell [flags] [-- COMMAND [ARG...]]"

// ShellOptions is a parsed `runbox shell` command line.
type ShellOptions struct {
	Box      BoxFlags
	Argv     []string
	Language string
	envDir   string
}

func parseShell(args []string, stderr io.Writer) (*ShellOptions, error) {
	o := &ShellOptions{Box: BoxFlags{Limits: jail.Defaults}}
	l := &o.Box.Limits
	l.WallTime, l.CPUTime, l.Output = shellWallTime, shellCPUTime, shellOutput
	fset := flag.NewFlagSet("runbox shell", flag.ContinueOnError)
	o.Box.register(fset, "wall-clock time limit of the shell",
		"CPU time limit of the shell and everything it starts",
		"bytes of terminal output kept over the whole shell (of stdout and of stderr each without a terminal); more ends it")
	fset.StringVar(&o.Language, "language", "", "add this language environment's variables (runbox env list names them)")
	fset.StringVar(&o.envDir, "environments", "", "folder of environment files that add to or override the defaults")
	if err := o.Box.parse(fset, args, shellUsage, stderr); err != nil {
		return nil, err
	}
	if o.Box.Server != "" && o.envDir != "" {
		return nil, usageError{"--environments is not available with --server (the server's environments apply)"}
	}
	o.Argv = fset.Args()
	if len(o.Argv) > 0 && o.Argv[0] == "" {
		return nil, usageError{"empty command name"}
	}
	if o.Language != "" && o.Box.Server == "" {
		sources := []fs.FS{env.Defaults()}
		if o.envDir != "" {
			sources = append(sources, os.DirFS(o.envDir))
		}
		reg, err := env.Load(sources...)
		if err != nil {
			return nil, usageError{"--environments: " + err.Error()}
		}
		e, err := reg.Lookup(o.Language)
		if err != nil {
			return nil, usageError{"--language: " + err.Error()}
		}
		// --env wins over the language's variables.
		var envv []string
		for _, kv := range e.Env {
			if k, _, _ := strings.Cut(kv, "="); !HasKey(o.Box.Env, k) {
				envv = append(envv, kv)
			}
		}
		o.Box.Env = append(envv, o.Box.Env...)
	}
	return o, nil
}

// Shell is `runbox shell` (args follow "shell"): COMMAND, by default a
// shell, in a fresh session box on this host, or on remote once the flags
// name a server. With a terminal on stdin the command gets a terminal of
// its own, sized as ours and resized with it, ours in raw mode meanwhile
// (^C, ^Z and the rest reach the box); without one it runs as `runbox run`
// would run it, its stdin ours.
func Shell(args []string, stdin io.Reader, stdout, stderr io.Writer, remote Remote) int {
	o, err := parseShell(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "runbox shell:", err)
		return ExitUsage
	}
	tty, _ := stdin.(*os.File)
	if tty != nil && !term.IsTerminal(int(tty.Fd())) {
		tty = nil
	}
	if o.Box.Server != "" {
		return remote.Shell(o, stdin, stdout, stderr, tty)
	}

	files, err := o.Box.Workspace()
	if err != nil {
		fmt.Fprintln(stderr, "runbox shell:", err)
		return ExitUsage
	}
	cfg := jail.DefaultConfig()
	cfg.InitPath = o.Box.InitPath
	j, err := jail.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "runbox shell:", err)
		return ExitInternalError
	}
	defer func() {
		if err := j.Close(); err != nil {
			fmt.Fprintln(stderr, "runbox shell: clean up:", err)
		}
	}()
	// In raw mode the terminal sends no signal of its own; these come
	// from elsewhere, and end the command (Exec's context), then runbox,
	// through the same path as the command's own end: the terminal is
	// restored on the way out.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer stop()
	s, err := j.OpenSession(ctx, jail.SessionSpec{Env: o.Box.Env, Files: files, Limits: o.Box.Limits})
	if err != nil {
		fmt.Fprintln(stderr, "runbox shell:", err)
		return ExitInternalError
	}
	defer s.Close()

	argv := o.Argv
	if len(argv) == 0 {
		if argv, err = defaultShell(ctx, s); err != nil {
			fmt.Fprintln(stderr, "runbox shell:", err)
			return ExitInternalError
		}
	}
	cmd := jail.CommandSpec{Argv: argv, Stdin: stdin, StdoutTee: stdout, StderrTee: stderr}
	var res jail.Result
	if tty != nil {
		res, err = onTerminal(ctx, s, cmd, tty, o.Box.Env)
	} else {
		res, err = s.Exec(ctx, cmd)
	}
	if err != nil {
		fmt.Fprintln(stderr, "runbox shell:", err)
		return ExitInternalError
	}
	return ExitCode(res, stderr)
}

// defaultShell is bash when the box has it, else sh.
func defaultShell(ctx context.Context, s *jail.Session) ([]string, error) {
	res, err := s.Exec(ctx, jail.CommandSpec{Argv: []string{"/bin/sh", "-c", "test -x /bin/bash"}, WallTime: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	if res.Status == jail.StatusOK {
		return []string{"/bin/bash"}, nil
	}
	return []string{"/bin/sh"}, nil
}

// onTerminal runs cmd on a terminal of its own while ours is in raw mode,
// and restores ours before it returns (a panic included).
func onTerminal(ctx context.Context, s *jail.Session, cmd jail.CommandSpec, tty *os.File, boxEnv []string) (jail.Result, error) {
	fd := int(tty.Fd())
	cols, rows, err := term.GetSize(fd)
	if err != nil {
		return jail.Result{}, fmt.Errorf("terminal size: %w", err)
	}
	// Programs in the box draw for the terminal we have (its terminfo is
	// in the box's /usr/share/terminfo), unless --env names another.
	if t := os.Getenv("TERM"); t != "" && !HasKey(boxEnv, "TERM") {
		cmd.Env = append(cmd.Env, "TERM="+t)
	}
	ctl := &jail.Control{}
	cmd.TTY, cmd.Control = &jail.TTY{Rows: uint16(rows), Cols: uint16(cols)}, ctl

	// A resize before the start is caught up with at the start.
	stop := FollowWindow(fd, cols, rows, ctl.Started(), func(r, c int) error { return ctl.Resize(uint16(r), uint16(c)) })
	defer stop()

	old, err := term.MakeRaw(fd)
	if err != nil {
		return jail.Result{}, fmt.Errorf("raw mode: %w", err)
	}
	defer func() { _ = term.Restore(fd, old) }()
	return s.Exec(ctx, cmd)
}

// FollowWindow resizes a box's terminal with ours (SIGWINCH) from started
// on, until stop is called; cols and rows are the size it was given.
func FollowWindow(fd, cols, rows int, started <-chan struct{}, resize func(rows, cols int) error) (stop func()) {
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		select {
		case <-started:
		case <-done:
			return
		}
		for {
			if c, r, err := term.GetSize(fd); err == nil && (c != cols || r != rows) {
				cols, rows = c, r
				_ = resize(r, c) // fails only once the command has ended
			}
			select {
			case <-winch:
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(winch)
		close(done)
	}
}
