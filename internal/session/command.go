package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/runbox-dev/runbox/internal/runner"
)

// CommandSpec is a command to start in a session.
type CommandSpec struct {
	Argv  []string // or
	Shell string   // run by /bin/sh -c
	Env   []string // added to the session's
	Cwd   string   // default: the session's
	// Stdin is the command's whole input. With OpenStdin instead, input
	// arrives later through Command.WriteStdin until Command.CloseStdin.
	Stdin     []byte
	OpenStdin bool
	// Limits of this command: wall and CPU time, output, open files (zero:
	// the session's).
	Limits runner.Limits
	TTY    *runner.TTY
	// MergeOutput makes the command's stderr its stdout's pipe: one
	// stream, in the order written, all of it "stdout". With a TTY the
	// output is one stream already and it changes nothing.
	MergeOutput bool
	// Background commands run under the session's lifetime; a foreground
	// command also ends when the context of Start's caller does.
	Background bool
}

// Chunk is a piece of a command's output.
type Chunk struct {
	Stream string // "stdout" or "stderr"
	Data   []byte
}

// Command is a command of a session, running or finished.
type Command struct {
	ID         string
	Argv       []string
	Started    time.Time
	Background bool
	TTY        bool

	s     *Session
	ctl   *runner.Control
	stdin *io.PipeWriter // nil unless OpenStdin
	input *io.PipeReader

	mu       sync.Mutex
	log      []Chunk // output in order, bounded by the command's output limit per stream; kept for attach
	starts   []int   // the offset of each chunk's first byte in the whole output
	total    int     // bytes in the log
	changed  chan struct{}
	finished time.Time
	result   *runner.Result
	err      error
	done     chan struct{}
}

// Start starts a command; it runs until its end, a limit, a signal, the
// session's end, or (for a foreground command) the end of ctx.
func (s *Session) Start(ctx context.Context, spec CommandSpec) (*Command, error) {
	argv := spec.Argv
	if spec.Shell != "" {
		argv = []string{"/bin/sh", "-c", spec.Shell}
	}
	if len(argv) == 0 {
		return nil, errors.New("a command needs an argv or a shell string")
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	c := &Command{ID: newID(), Argv: argv, Started: time.Now(), Background: spec.Background, TTY: spec.TTY != nil,
		s: s, ctl: &runner.Control{}, changed: make(chan struct{}), done: make(chan struct{})}
	s.mu.Lock()
	env := mergeEnv(s.env, spec.Env)
	cwd := spec.Cwd
	if cwd == "" {
		cwd = s.cwd
	}
	s.commands[c.ID] = c
	s.mu.Unlock()

	var stdin io.Reader = bytes.NewReader(spec.Stdin)
	if spec.OpenStdin {
		c.input, c.stdin = io.Pipe()
		stdin = c.input
	}
	cmd := runner.Command{Argv: argv, Env: env, Dir: cwd, Stdin: stdin,
		StdoutTee: logWriter{c, "stdout"}, StderrTee: logWriter{c, "stderr"},
		WallTime: spec.Limits.WallTime, CPUTime: spec.Limits.CPUTime, Output: spec.Limits.Output, OpenFiles: spec.Limits.OpenFiles,
		TTY: spec.TTY, Control: c.ctl, MergeOutput: spec.MergeOutput}
	run := s.ctx
	stopRun := func() {}
	if !spec.Background {
		// Either end stops it: the caller's, or the session's.
		var cancel context.CancelFunc
		run, cancel = context.WithCancel(ctx)
		stop := context.AfterFunc(s.ctx, cancel)
		stopRun = func() { stop(); cancel() }
	}
	go func() {
		defer stopRun()
		res, err := s.box.Exec(run, cmd)
		if s.ctx.Err() != nil {
			// The session ended under it: that is the command's fate,
			// not runbox failing.
			res, err = endedResult(res, s.endReason()), nil
		}
		if c.input != nil {
			// A writer blocked on a command that no longer reads ends.
			c.input.CloseWithError(runner.ErrCommandEnded)
		}
		c.mu.Lock()
		c.result, c.err, c.finished = &res, err, time.Now()
		close(c.done)
		c.notifyLocked()
		c.mu.Unlock()
		s.leave(c)
	}()
	return c, nil
}

// Command returns a running or recently finished command.
func (s *Session) Command(id string) (*Command, error) {
	if err := s.touch(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.commands[id]
	if c == nil {
		return nil, ErrNoCommand
	}
	return c, nil
}

// Commands returns the running and recently finished commands, oldest
// first.
func (s *Session) Commands() []*Command {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Command, 0, len(s.commands))
	for _, c := range s.commands {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out
}

// logWriter appends a stream's output to the command's log. The jail
// writes exactly the bytes its Result keeps (at most the output limit per
// stream), so the log is bounded by the command's own limit.
type logWriter struct {
	c      *Command
	stream string
}

func (w logWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c := w.c
	c.mu.Lock()
	// A program that writes a byte at a time must not cost a chunk a
	// byte: output joins the last chunk of its stream, up to maxChunk.
	// Bytes a reader was given are never changed (only appended after).
	if n := len(c.log); n > 0 && c.log[n-1].Stream == w.stream && len(c.log[n-1].Data)+len(p) <= maxChunk {
		c.log[n-1].Data = append(c.log[n-1].Data, p...)
	} else {
		c.log = append(c.log, Chunk{Stream: w.stream, Data: append(make([]byte, 0, max(len(p), 512)), p...)})
		c.starts = append(c.starts, c.total)
	}
	c.total += len(p)
	c.notifyLocked()
	c.mu.Unlock()
	return len(p), nil
}

// maxChunk bounds the chunks output is joined into.
const maxChunk = 64 << 10

func (c *Command) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Output returns the output from byte offset from (of the whole output,
// both streams in the order written), the offset after it, and a channel
// closed when there is more or the command has ended. The chunks' bytes
// are shared: read them, never change them.
func (c *Command) Output(from int) (chunks []Chunk, next int, changed <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if from < c.total {
		i := sort.Search(len(c.starts), func(i int) bool { return c.starts[i] > from }) - 1
		first := c.log[i]
		n := len(first.Data)
		chunks = append(chunks, Chunk{Stream: first.Stream, Data: first.Data[from-c.starts[i] : n : n]})
		for _, ch := range c.log[i+1:] {
			n := len(ch.Data)
			chunks = append(chunks, Chunk{Stream: ch.Stream, Data: ch.Data[:n:n]})
		}
	}
	return chunks, max(from, c.total), c.changed
}

// Done is closed when the command has ended.
func (c *Command) Done() <-chan struct{} { return c.done }

// Result is the command's result once it has ended (nil before), and the
// error that made it an internal error, if any.
func (c *Command) Result() (*runner.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.result, c.err
}

// Finished is when the command ended (zero while it runs).
func (c *Command) Finished() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.finished
}

// Snapshot is a running command's output so far (each stream in order).
func (c *Command) Snapshot() (stdout, stderr []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.result != nil {
		return c.result.Stdout, c.result.Stderr
	}
	var o, e bytes.Buffer
	for _, ch := range c.log {
		if ch.Stream == "stdout" {
			o.Write(ch.Data)
		} else {
			e.Write(ch.Data)
		}
	}
	return o.Bytes(), e.Bytes()
}

// Wait waits for the end, or ctx.
func (c *Command) Wait(ctx context.Context) (*runner.Result, error) {
	select {
	case <-c.done:
		return c.Result()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Signal sends a signal to the command's main process (SIGKILL: to all
// of it).
func (c *Command) Signal(sig syscall.Signal) error {
	if err := c.s.touch(); err != nil {
		return err
	}
	return c.ctl.Signal(sig)
}

// Resize changes the size of the command's terminal.
func (c *Command) Resize(rows, cols uint16) error {
	return c.ctl.Resize(rows, cols)
}

// ErrStdinClosed: the command's input is closed (or was given whole).
var ErrStdinClosed = errors.New("the command's stdin is closed")

// WriteStdin writes to the command's input; it blocks while the command
// does not read (its pipe is full), until ctx ends.
func (c *Command) WriteStdin(ctx context.Context, p []byte) error {
	if c.stdin == nil {
		return ErrStdinClosed
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.stdin.Write(p)
		done <- err
	}()
	select {
	case err := <-done:
		if errors.Is(err, io.ErrClosedPipe) {
			return ErrStdinClosed
		}
		return err
	case <-ctx.Done():
		// The write goes on until the command reads or ends.
		return ctx.Err()
	}
}

// CloseStdin ends the command's input.
func (c *Command) CloseStdin() error {
	if c.stdin == nil {
		return ErrStdinClosed
	}
	return c.stdin.Close()
}

// Exec starts a foreground command and waits for its result.
func (s *Session) Exec(ctx context.Context, spec CommandSpec) (*Command, *runner.Result, error) {
	spec.Background = false
	c, err := s.Start(ctx, spec)
	if err != nil {
		return nil, nil, err
	}
	<-c.done
	res, err := c.Result()
	if err != nil {
		return c, res, fmt.Errorf("command: %w", err)
	}
	return c, res, nil
}

// endedResult is the result of a command whose session ended while it
// ran: at the session's lifetime a time limit, otherwise a kill.
func endedResult(res runner.Result, why string) runner.Result {
	if why == reasonLifetime {
		res.Status, res.Message = runner.StatusTimeLimit, "the session's maximum lifetime was reached"
		return res
	}
	res.Status, res.Signal, res.ExitCode = runner.StatusSignaled, int(syscall.SIGKILL), -1
	res.Message = "killed: the session ended (" + why + ")"
	return res
}
