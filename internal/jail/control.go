package jail

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
)

var (
	// ErrNotStarted: the command of a Control has not started yet.
	ErrNotStarted = errors.New("command has not started")
	// ErrCommandEnded: the command of a Control has ended.
	ErrCommandEnded = errors.New("command has ended")
	// ErrNoTTY: a Resize of a command that has no terminal.
	ErrNoTTY = errors.New("command has no terminal")
)

// Control reaches a running command from outside: the caller makes one
// (&jail.Control{}), sets it in CommandSpec.Control and keeps it. It is
// safe for concurrent use.
//
// A command has started once its first stage has taken it, just before it
// executes: when Exec runs it again after a stage that was killed before
// it took the command, the Control follows the attempt that ran it.
type Control struct {
	mu      sync.Mutex
	used    bool // given to an Exec
	began   bool // the command started (it may have ended since)
	state   controlState
	started chan struct{} // closed once started; made on demand
	cmd     commandHandle // while running
}

type controlState int

const (
	controlWaiting controlState = iota
	controlRunning
	controlEnded
)

// commandHandle is the platform's side of a running command.
type commandHandle interface {
	signal(sig syscall.Signal) error
	resize(rows, cols uint16) error
}

// maxSignal is the highest signal number Linux has (SIGRTMAX).
const maxSignal = 64

// Started returns a channel closed once the command has started. A
// command that never starts (its program is missing, Exec failed) never
// closes it: wait for Exec's return as well.
func (c *Control) Started() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started == nil {
		c.started = make(chan struct{})
		if c.began {
			close(c.started)
		}
	}
	return c.started
}

// Signal sends sig to the command's own process (not to what it started).
// SIGKILL kills the command and everything it started, as a limit does.
// It returns ErrNotStarted before the command has started and
// ErrCommandEnded after its end.
func (c *Control) Signal(sig syscall.Signal) error {
	if sig <= 0 || sig > maxSignal {
		return fmt.Errorf("signal %d: not a signal number", int(sig))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.runningLocked(); err != nil {
		return err
	}
	return c.cmd.signal(sig)
}

// Resize sets the size of the command's terminal; the kernel sends its
// foreground process group SIGWINCH. It returns ErrNoTTY for a command
// without a terminal, ErrNotStarted before the command has started and
// ErrCommandEnded after its end.
func (c *Control) Resize(rows, cols uint16) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.runningLocked(); err != nil {
		return err
	}
	return c.cmd.resize(rows, cols)
}

func (c *Control) runningLocked() error {
	switch c.state {
	case controlWaiting:
		return ErrNotStarted
	case controlEnded:
		return ErrCommandEnded
	}
	return nil
}

// claim takes the Control for one Exec.
func (c *Control) claim() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.used {
		return errors.New("the command's Control was given to another command")
	}
	c.used = true
	return nil
}

// begin attaches the command that has just started.
func (c *Control) begin(h commandHandle) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != controlWaiting {
		return
	}
	c.state, c.cmd, c.began = controlRunning, h, true
	if c.started != nil {
		close(c.started)
	}
}

// end detaches the command: once it returns, the handle is no longer used
// (its descriptors may be closed).
func (c *Control) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state = controlEnded
	c.cmd = nil
}
