package jail

import (
	"context"
	"errors"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runbox-dev/runbox/internal/cgroup"
	"github.com/runbox-dev/runbox/internal/jail/boxinit"
)

// A stage is a command's first stage made ahead of the command: a cgroup
// of its own below the box's, and in it a process forked by init that
// waits for its command (boxinit.execShim). Everything that does not
// depend on the command — the cgroup's creation, the fork, the Go start-up
// of the stage, the move into the cgroup (which on cgroup v1 may wait for
// an RCU grace period) — happens before the command arrives, while the
// previous command runs: a command in a live session then costs little
// more than an exec.
type stage struct {
	id      uint64 // the request id of its messages
	ch      chan sessionMsg
	group   *cgroup.Group
	pid     int // host pid
	pidfd   int
	started bool // given a command
}

// forkError: init could not fork a stage (the session's process limit, or
// its memory): the command's result, not runbox's failure.
type forkError struct{ msg string }

func (e forkError) Error() string { return "fork: " + e.msg }

type stageResult struct {
	st  *stage
	err error
}

// keepSpare keeps one stage ready (blocked on the unbuffered s.spare)
// until the session ends. The next one is made once the command that took
// the last one has ended (s.ended), not while it runs: making a stage
// takes init's loop (the fork) and a core for a millisecond or two, which
// a running command would pay for in its own latency; a session's next
// command usually comes later than that.
func (s *Session) keepSpare() {
	defer close(s.spareDone)
	for {
		s.preparing.Store(true)
		st, err := s.prepare()
		s.preparing.Store(false)
		select {
		case s.spare <- stageResult{st, err}:
		case <-s.stop:
			if st != nil {
				s.discard(st)
			}
			return
		}
		// An end told while the spare waited is an earlier command's:
		// the next stage waits for the end of one that started since
		// (else it would be made while the command that took this one
		// runs, and take a core from it).
		select {
		case <-s.ended:
		default:
		}
		select {
		case <-s.ended:
		case <-s.stop:
			return
		}
		if err != nil {
			// Tried again when the next command asks (takeStage); a dead
			// session makes no more.
			select {
			case <-s.stop:
				return
			case <-s.dead:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// commandEnded tells keepSpare to make the next stage.
func (s *Session) commandEnded() {
	select {
	case s.ended <- struct{}{}:
	default:
	}
}

// spareWait bounds the wait for a spare being made (another command may
// take it first).
const spareWait = 20 * time.Millisecond

// takeStage returns a ready stage: the spare when it is ready, else a new
// one (commands at once each need their own; the spare may have failed,
// when a command was holding every process of the session).
func (s *Session) takeStage(ctx context.Context) (*stage, error) {
	// A spare being made is waited for rather than a second one made
	// beside it (the two would share the cores); a spare taken by another
	// command meanwhile leaves this one to make its own.
	var wait <-chan stageResult
	if s.preparing.Load() {
		wait = s.spare
	}
	select {
	case r := <-s.spare:
		if r.err == nil && !r.st.exited() {
			return r.st, nil
		}
		if r.st != nil {
			s.discard(r.st)
		}
		return s.prepare()
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.dead:
		return nil, ErrSessionClosed
	default:
	}
	if wait != nil {
		select {
		case r := <-wait:
			if r.err == nil && !r.st.exited() {
				return r.st, nil
			}
			if r.st != nil {
				s.discard(r.st)
			}
		case <-time.After(spareWait):
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.dead:
			return nil, ErrSessionClosed
		}
	}
	return s.prepare()
}

// exited reports whether a stage ended before it was used (another
// command, or the OOM killer, may kill it).
func (st *stage) exited() bool {
	select {
	case m := <-st.ch:
		if m.fd >= 0 {
			unix.Close(m.fd)
		}
		return true
	default:
		return false
	}
}

// prepare makes a stage: its cgroup, the fork by init, the move.
func (s *Session) prepare() (_ *stage, err error) {
	id, ch, err := s.enter()
	if err != nil {
		return nil, err
	}
	st := &stage{id: id, ch: ch, pidfd: -1}
	defer func() {
		if err != nil {
			s.discard(st)
		}
	}()
	if st.group, err = s.b.group.Child("cmd-"+strconv.FormatUint(id, 10), cgroup.Limits{}); err != nil {
		return nil, err
	}
	if err := s.send(boxinit.SessionRequest{ID: id, Op: boxinit.OpFork}); err != nil {
		return nil, err
	}
	// Not a caller's context: a stage is made ahead, for whichever command
	// comes next. It is bounded by the setup deadline and the session's end.
	m, err := s.wait(context.Background(), ch, time.Now().Add(s.j.phases.setup))
	if err != nil {
		return nil, err
	}
	switch {
	case m.rep.ExecError != "":
		return nil, forkError{m.rep.ExecError}
	case m.rep.Error != "":
		return nil, errors.New("session init: " + m.rep.Error)
	case !m.rep.Forked || m.fd < 0:
		if m.fd >= 0 {
			unix.Close(m.fd)
		}
		return nil, errors.New("session init: no first stage")
	}
	st.pidfd = m.fd
	if st.pid, err = pidfdPid(st.pidfd); err != nil {
		return nil, err
	}
	if err := place(st.group, st.pid, st.pidfd); err != nil {
		return nil, err
	}
	return st, nil
}

// discard ends a stage: whatever runs in its cgroup is killed, the cgroup
// removed, and its replies no longer awaited.
func (s *Session) discard(st *stage) {
	if st.group != nil {
		if !st.started && st.pidfd >= 0 {
			// Waiting for a command that never came: tell init, which
			// closes the stage's socket (the stage exits), and kill it.
			_ = s.send(boxinit.SessionRequest{ID: st.id, Op: boxinit.OpAbort})
		}
		if err := st.group.Kill(); err != nil {
			s.j.log.Error("kill command cgroup", "box", s.b.id, "err", err)
		}
		if err := st.group.Remove(); err != nil {
			s.j.log.Error("remove command cgroup", "box", s.b.id, "err", err)
		}
		st.group = nil
	}
	if st.pidfd >= 0 {
		unix.Close(st.pidfd)
		st.pidfd = -1
	}
	if st.ch != nil {
		s.leave(st.id, st.ch)
		st.ch = nil
	}
}
