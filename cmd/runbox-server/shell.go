package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/runbox-dev/runbox/client"
	"github.com/runbox-dev/runbox/internal/cli"
)

// remoteShell is the shell started when no COMMAND is given: bash when the
// box has it, else sh (one round trip, as the local default shell decides).
const remoteShell = "if [ -x /bin/bash ]; then exec /bin/bash; else exec /bin/sh; fi"

// shellRemote is `runbox shell --server URL`: a session of the server,
// COMMAND started in it on a WebSocket (on a pseudo-terminal of the
// server's when stdin is a terminal, ours in raw mode meanwhile), the
// session deleted on every way out. The limits given on the command line
// are sent (the session's, or the command's: time, output, open files);
// the others are the server's defaults, and a terminal's wall-clock time
// the server's command_max_wall_time.
func shellRemote(o *cli.ShellOptions, stdin io.Reader, stdout, stderr io.Writer, tty *os.File) int {
	c, req, err := remoteOf(&o.Box)
	if err != nil {
		fmt.Fprintln(stderr, "runbox shell:", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer stop()
	sreq := client.SessionRequest{Language: o.Language, Env: req.Env, Files: req.Files}
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
	start := client.StartRequest{Command: o.Argv, Limits: cmdLimits}
	if len(o.Argv) == 0 {
		start.Shell = remoteShell
	}
	var s *client.Stream
	var last *client.Event
	if tty != nil {
		last, err = remoteTerminal(ctx, c, ss.ID, start, tty, o.Box.Env, stdout)
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
	return cli.ExitCode(jailResult(last.Result), stderr)
}

// remoteTerminal runs start on a terminal of the server's while ours is in
// raw mode, resized with ours, and restores ours before it returns.
func remoteTerminal(ctx context.Context, c *client.Client, id string, start client.StartRequest, tty *os.File, boxEnv []string, stdout io.Writer) (*client.Event, error) {
	fd := int(tty.Fd())
	cols, rows, err := term.GetSize(fd)
	if err != nil {
		return nil, fmt.Errorf("terminal size: %w", err)
	}
	if t := os.Getenv("TERM"); t != "" && !cli.HasKey(boxEnv, "TERM") {
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
	stop := cli.FollowWindow(fd, cols, rows, started, func(r, c int) error { return s.Resize(ctx, r, c) })
	defer stop()

	old, err := term.MakeRaw(fd)
	if err != nil {
		return nil, fmt.Errorf("raw mode: %w", err)
	}
	defer func() { _ = term.Restore(fd, old) }()
	go pumpStdin(ctx, s, tty)
	return s.Wait(ctx, stdout, stdout)
}
