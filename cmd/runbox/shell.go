package main

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

	"github.com/runbox-dev/runbox/client"
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

type shellOptions struct {
	box      boxFlags
	argv     []string
	language string
	envDir   string
}

func parseShell(args []string, stderr io.Writer) (*shellOptions, error) {
	o := &shellOptions{box: boxFlags{limits: jail.Defaults}}
	l := &o.box.limits
	l.WallTime, l.CPUTime, l.Output = shellWallTime, shellCPUTime, shellOutput
	fset := flag.NewFlagSet("runbox shell", flag.ContinueOnError)
	o.box.register(fset, "wall-clock time limit of the shell",
		"CPU time limit of the shell and everything it starts",
		"bytes of terminal output kept over the whole shell (of stdout and of stderr each without a terminal); more ends it")
	fset.StringVar(&o.language, "language", "", "add this language environment's variables (runbox env list names them)")
	fset.StringVar(&o.envDir, "environments", "", "folder of environment files that add to or override the defaults")
	if err := o.box.parse(fset, args, shellUsage, stderr); err != nil {
		return nil, err
	}
	if o.box.server != "" && o.envDir != "" {
		return nil, usageError{"--environments is not available with --server (the server's environments apply)"}
	}
	o.argv = fset.Args()
	if len(o.argv) > 0 && o.argv[0] == "" {
		return nil, usageError{"empty command name"}
	}
	if o.language != "" && o.box.server == "" {
		sources := []fs.FS{env.Defaults()}
		if o.envDir != "" {
			sources = append(sources, os.DirFS(o.envDir))
		}
		reg, err := env.Load(sources...)
		if err != nil {
			return nil, usageError{"--environments: " + err.Error()}
		}
		e, err := reg.Lookup(o.language)
		if err != nil {
			return nil, usageError{"--language: " + err.Error()}
		}
		// --env wins over the language's variables.
		var envv []string
		for _, kv := range e.Env {
			if k, _, _ := strings.Cut(kv, "="); !hasKey(o.box.env, k) {
				envv = append(envv, kv)
			}
		}
		o.box.env = append(envv, o.box.env...)
	}
	return o, nil
}

// cmdShell is `runbox shell`: COMMAND, by default a shell, in a fresh
// session box. With a terminal on stdin the command gets a terminal of its
// own, sized as ours and resized with it, ours in raw mode meanwhile (^C,
// ^Z and the rest reach the box); without one it runs as `runbox run`
// would run it, its stdin ours.
func cmdShell(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parseShell(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "runbox shell:", err)
		return exitUsage
	}
	tty, _ := stdin.(*os.File)
	if tty != nil && !term.IsTerminal(int(tty.Fd())) {
		tty = nil
	}
	if o.box.server != "" {
		return shellRemote(o, stdin, stdout, stderr, tty)
	}

	files, err := o.box.workspace()
	if err != nil {
		fmt.Fprintln(stderr, "runbox shell:", err)
		return exitUsage
	}
	cfg := jail.DefaultConfig()
	cfg.InitPath = o.box.initPath
	j, err := jail.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "runbox shell:", err)
		return exitInternalError
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
	s, err := j.OpenSession(ctx, jail.SessionSpec{Env: o.box.env, Files: files, Limits: o.box.limits})
	if err != nil {
		fmt.Fprintln(stderr, "runbox shell:", err)
		return exitInternalError
	}
	defer s.Close()

	argv := o.argv
	if len(argv) == 0 {
		if argv, err = defaultShell(ctx, s); err != nil {
			fmt.Fprintln(stderr, "runbox shell:", err)
			return exitInternalError
		}
	}
	cmd := jail.CommandSpec{Argv: argv, Stdin: stdin, StdoutTee: stdout, StderrTee: stderr}
	var res jail.Result
	if tty != nil {
		res, err = onTerminal(ctx, s, cmd, tty, o.box.env)
	} else {
		res, err = s.Exec(ctx, cmd)
	}
	if err != nil {
		fmt.Fprintln(stderr, "runbox shell:", err)
		return exitInternalError
	}
	return exitCode(res, stderr)
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
	if t := os.Getenv("TERM"); t != "" && !hasKey(boxEnv, "TERM") {
		cmd.Env = append(cmd.Env, "TERM="+t)
	}
	ctl := &jail.Control{}
	cmd.TTY, cmd.Control = &jail.TTY{Rows: uint16(rows), Cols: uint16(cols)}, ctl

	// A resize before the start is caught up with at the start.
	stop := followWindow(fd, cols, rows, ctl.Started(), func(r, c int) error { return ctl.Resize(uint16(r), uint16(c)) })
	defer stop()

	old, err := term.MakeRaw(fd)
	if err != nil {
		return jail.Result{}, fmt.Errorf("raw mode: %w", err)
	}
	defer func() { _ = term.Restore(fd, old) }()
	return s.Exec(ctx, cmd)
}

func hasKey(envv []string, key string) bool {
	for _, kv := range envv {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}

// remoteShell is the shell started when no COMMAND is given: bash when the
// box has it, else sh (one round trip, as the local defaultShell decides).
const remoteShell = "if [ -x /bin/bash ]; then exec /bin/bash; else exec /bin/sh; fi"

// shellRemote is `runbox shell --server URL`: a session of the server,
// COMMAND started in it on a WebSocket (on a pseudo-terminal of the
// server's when stdin is a terminal, ours in raw mode meanwhile), the
// session deleted on every way out. The limits given on the command line
// are sent (the session's, or the command's: time, output, open files);
// the others are the server's defaults, and a terminal's wall-clock time
// the server's command_max_wall_time.
func shellRemote(o *shellOptions, stdin io.Reader, stdout, stderr io.Writer, tty *os.File) int {
	c, req, err := o.box.remote()
	if err != nil {
		fmt.Fprintln(stderr, "runbox shell:", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer stop()
	sreq := client.SessionRequest{Language: o.language, Env: req.Env, Files: req.Files}
	var cmdLimits *client.CommandLimits
	if l := req.Limits; l != nil {
		sreq.Limits = &client.Limits{MemoryBytes: l.MemoryBytes, Processes: l.Processes, FileSizeBytes: l.FileSizeBytes, DiskBytes: l.DiskBytes}
		cmdLimits = &client.CommandLimits{WallTimeMS: l.WallTimeMS, CPUTimeMS: l.CPUTimeMS, OutputBytes: l.OutputBytes, OpenFiles: l.OpenFiles}
	}
	ss, err := c.CreateSession(ctx, sreq)
	if err != nil {
		return remoteFailure("runbox shell", err, stderr)
	}
	defer func() {
		// The session must end even when ctx has (a signal): a fresh,
		// bounded context.
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.DeleteSession(dctx, ss.ID); err != nil {
			fmt.Fprintln(stderr, "runbox shell: clean up:", err)
		}
	}()
	start := client.StartRequest{Command: o.argv, Limits: cmdLimits}
	if len(o.argv) == 0 {
		start.Shell = remoteShell
	}
	var s *client.Stream
	var last *client.Event
	if tty != nil {
		last, err = remoteTerminal(ctx, c, ss.ID, start, tty, o.box.env, stdout)
	} else if s, err = c.Attach(ctx, ss.ID, start); err == nil {
		go pumpStdin(ctx, s, stdin)
		last, err = s.Wait(ctx, stdout, stderr)
		s.Close()
	}
	if err != nil {
		return remoteFailure("runbox shell", err, stderr)
	}
	if last.Result == nil {
		fmt.Fprintln(stderr, "runbox shell: the server ended the command without a result")
		return exitInternalError
	}
	return exitCode(jailResult(last.Result), stderr)
}

// remoteTerminal runs start on a terminal of the server's while ours is in
// raw mode, resized with ours, and restores ours before it returns.
func remoteTerminal(ctx context.Context, c *client.Client, id string, start client.StartRequest, tty *os.File, boxEnv []string, stdout io.Writer) (*client.Event, error) {
	fd := int(tty.Fd())
	cols, rows, err := term.GetSize(fd)
	if err != nil {
		return nil, fmt.Errorf("terminal size: %w", err)
	}
	if t := os.Getenv("TERM"); t != "" && !hasKey(boxEnv, "TERM") {
		start.Env = map[string]string{"TERM": t}
	}
	start.PTY = &client.PTYSize{Rows: rows, Cols: cols}
	s, err := c.Attach(ctx, id, start)
	if err != nil {
		return nil, err
	}
	defer s.Close()

	started := make(chan struct{})
	close(started)
	stop := followWindow(fd, cols, rows, started, func(r, c int) error { return s.Resize(ctx, r, c) })
	defer stop()

	old, err := term.MakeRaw(fd)
	if err != nil {
		return nil, fmt.Errorf("raw mode: %w", err)
	}
	defer func() { _ = term.Restore(fd, old) }()
	go pumpStdin(ctx, s, tty)
	return s.Wait(ctx, stdout, stdout)
}

// followWindow resizes a box's terminal with ours (SIGWINCH) from started
// on, until stop is called; cols and rows are the size it was given.
func followWindow(fd, cols, rows int, started <-chan struct{}, resize func(rows, cols int) error) (stop func()) {
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
