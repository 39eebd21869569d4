package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/runbox-dev/runbox/client"
	"github.com/runbox-dev/runbox/internal/cli"
	"github.com/runbox-dev/runbox/internal/jail"
)

// onServer runs run and shell on the server --server (or RUNBOX_SERVER) names.
type onServer struct{}

var _ cli.Remote = onServer{}

func (onServer) Run(o *cli.RunOptions, stdout, stderr io.Writer) int {
	return runRemote(o, stdout, stderr)
}

func (onServer) Shell(o *cli.ShellOptions, stdin io.Reader, stdout, stderr io.Writer, tty *os.File) int {
	return shellRemote(o, stdin, stdout, stderr, tty)
}

// runRemote is `runbox run --server URL`: the command runs on the server's
// run stream (GET /v1/run/stream), its output written here as it comes and
// our stdin sent as it is read, with the exit code and --json object a
// local run gives.
func runRemote(o *cli.RunOptions, stdout, stderr io.Writer) int {
	c, req, err := remoteOf(&o.Box)
	if err != nil {
		fmt.Fprintln(stderr, "runbox run:", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	s, err := c.RunStream(ctx, client.RunRequest{Command: o.Spec.Argv, Env: req.Env, Files: req.Files, Limits: req.Limits})
	if err != nil {
		return remoteFailure("runbox run", err, stderr)
	}
	// Closing the socket (on a signal) makes the server kill the box.
	defer s.Close()
	go pumpStdin(ctx, s, o.Spec.Stdin)
	var outw, errw io.Writer
	if !o.JSON {
		outw, errw = stdout, stderr
	}
	last, err := s.Wait(ctx, outw, errw)
	if err != nil {
		return remoteFailure("runbox run", err, stderr)
	}
	res := last.Response.Run
	if res == nil {
		fmt.Fprintln(stderr, "runbox run: the server answered without a run")
		return exitInternalError
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(res); err != nil || res.Status == client.StatusInternalError {
			return exitInternalError
		}
		return 0
	}
	return cli.ExitCode(jailResult(res), stderr)
}

// remoteRequest is what a server is sent of the box flags.
type remoteRequest struct {
	Env    map[string]string
	Files  []client.File
	Limits *client.Limits
}

// remoteOf makes a client of --server and translates the flags: the limits
// given on the command line (the others are the server's defaults), the
// environment, and --files (regular files; directories come with them).
func remoteOf(b *cli.BoxFlags) (*client.Client, remoteRequest, error) {
	var req remoteRequest
	c, err := client.New(b.Server, client.WithToken(os.Getenv("RUNBOX_KEY")))
	if err != nil {
		return nil, req, usageError{"--server: " + err.Error()}
	}
	if len(b.Env) > 0 {
		req.Env = map[string]string{}
		for _, kv := range b.Env {
			k, v, _ := strings.Cut(kv, "=")
			req.Env[k] = v
		}
	}
	l, lim := b.Limits, client.Limits{}
	ms := func(d time.Duration) int64 { return max(1, d.Milliseconds()) }
	for name, set := range map[string]func(){
		"wall-time": func() { lim.WallTimeMS = ms(l.WallTime) }, "cpu-time": func() { lim.CPUTimeMS = ms(l.CPUTime) },
		"memory": func() { lim.MemoryBytes = l.Memory }, "processes": func() { lim.Processes = int64(l.Processes) },
		"file-size": func() { lim.FileSizeBytes = l.FileSize }, "open-files": func() { lim.OpenFiles = int64(l.OpenFiles) },
		"output": func() { lim.OutputBytes = l.Output }, "disk": func() { lim.DiskBytes = l.Disk },
	} {
		if b.Set[name] {
			set()
		}
	}
	if lim != (client.Limits{}) {
		req.Limits = &lim
	}
	files, err := b.Workspace()
	if err != nil {
		return nil, req, err
	}
	for _, f := range files {
		switch {
		case f.Symlink != "":
			return nil, req, usageError{"--files: " + f.Name + ": a symlink cannot be sent to a server"}
		case !f.Dir:
			req.Files = append(req.Files, client.BinaryFile(f.Name, f.Data))
		}
	}
	return c, req, nil
}

// pumpStdin sends r to the stream's stdin until its end, then closes the
// stream's stdin. It stops when the stream ends (a write fails).
func pumpStdin(ctx context.Context, s *client.Stream, r io.Reader) {
	if r == nil {
		_ = s.CloseStdin(ctx)
		return
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if s.Stdin(ctx, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			_ = s.CloseStdin(ctx)
			return
		}
	}
}

// remoteFailure reports a call to the server that did not give a result:
// a refusal of the request (4xx, the command line's fault) is a usage
// error, anything else (unreachable, busy, the server failed) runbox's.
func remoteFailure(cmd string, err error, stderr io.Writer) int {
	fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
	var e *client.Error
	if errors.As(err, &e) && e.Status >= 400 && e.Status < 500 && e.Status != 408 && e.Status != 429 && e.Status != 499 {
		return exitUsage
	}
	return exitInternalError
}

// jailResult is a server's result as the jail's, for exitCode.
func jailResult(r *client.Result) jail.Result {
	res := jail.Result{Status: jail.Status(r.Status), ExitCode: r.ExitCode, Message: r.Message}
	if r.Signal != nil {
		for sig := 1; sig < 65; sig++ {
			if jail.SignalName(sig) == *r.Signal {
				res.Signal = sig
				break
			}
		}
	}
	return res
}
