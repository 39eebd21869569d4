package jail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runbox-dev/runbox/internal/cgroup"
	"github.com/runbox-dev/runbox/internal/jail/boxinit"
)

// Session is a long-lived box into which commands are started and through
// whose own view files are read and written. It is safe for concurrent
// use: several commands may run at once.
//
// The box is built as a one-shot box is (same namespaces, mounts, tmpfs,
// uid slot, cgroup, seccomp, no capabilities); then runbox-init, instead of
// executing one program, serves requests on a SOCK_SEQPACKET channel
// (boxinit.serveSession). Each command gets a cgroup of its own below the
// box's: it is forked by init as a waiting first stage, moved into that
// cgroup by the supervisor, and only then executes, so its CPU time, its
// OOM kills and its kill cover it and everything it started, and a
// command's limit never ends the session.
type Session struct {
	j    *Jail
	b    *box
	lim  Limits
	env  []string
	dir  string
	conn *net.UnixConn
	// sendMu serialises sends, each with its own write deadline.
	sendMu sync.Mutex

	mu      sync.Mutex
	waiters map[uint64]chan sessionMsg
	seq     uint64
	closed  bool
	dead    chan struct{} // closed once init's channel has ended

	ops       sync.WaitGroup // calls and stages under way; Close waits for them
	closeOnce sync.Once

	// spare holds the next command's first stage, made ahead by
	// keepSpare (see stage) after a command has ended (ended); stop ends
	// keepSpare, which closes spareDone.
	spare     chan stageResult
	preparing atomic.Bool // keepSpare is making the next spare
	ended     chan struct{}
	stop      chan struct{}
	spareDone chan struct{}
}

type sessionMsg struct {
	rep boxinit.SessionReply
	fd  int // a received descriptor, or -1
}

// Timeouts of a session's channel.
const (
	// sessionSendTime bounds one send to init (it reads all the time).
	sessionSendTime = 5 * time.Second
	// sessionInitThreads is the pids allowance for a serving init: its
	// threads, and file operations blocked in system calls.
	sessionInitThreads = 32
	// drainGrace: after a command's end and the kill of its cgroup, its
	// output pipes are read this long at most. Only a process of another
	// command that was passed the pipe (SCM_RIGHTS) can hold them open.
	drainGrace = time.Second
)

// OpenSession starts a session box: its files are in /box and it waits
// for commands. Close ends it.
func (j *Jail) OpenSession(ctx context.Context, spec SessionSpec) (_ *Session, err error) {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil, errors.New("jail is closed")
	}
	j.active.Add(1)
	j.mu.Unlock()
	registered := false // from then on Close releases the jail
	defer func() {
		if err != nil && !registered {
			j.active.Done()
		}
	}()
	lim := spec.Limits.WithDefaults(Defaults)
	if err := lim.Validate(); err != nil {
		return nil, fmt.Errorf("limits: %w", err)
	}
	one := Spec{Env: spec.Env, Dir: spec.Dir, Files: spec.Files, Limits: lim}
	if err := checkSpec(one); err != nil {
		return nil, err
	}
	rc := j.runConfig(one)
	rc.Argv, rc.Session = nil, true
	// RLIMIT_NOFILE, RLIMIT_CPU and RLIMIT_NPROC are each command's (its
	// first stage sets them); init keeps its own: it receives descriptors
	// for every command, runs for the session's life, and forks the
	// first stages as its own uid.
	var rls []boxinit.Rlimit
	for _, r := range rc.Rlimits {
		if r.Resource != unix.RLIMIT_NOFILE && r.Resource != unix.RLIMIT_CPU && r.Resource != unix.RLIMIT_NPROC {
			rls = append(rls, r)
		}
	}
	rc.Rlimits = rls
	cfg, err := rc.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if len(cfg) > boxinit.MaxConfig {
		return nil, fmt.Errorf("%w: the session's configuration is %d bytes (at most %d)", ErrSpecTooLarge, len(cfg), boxinit.MaxConfig)
	}
	stageExe, err := j.stageBinary()
	if err != nil {
		return nil, err
	}
	b, err := j.startBox(true, spec.Root)
	if err != nil {
		return nil, err
	}
	s := &Session{j: j, b: b, lim: lim, env: rc.Env, dir: rc.Dir[0],
		waiters: map[uint64]chan sessionMsg{}, dead: make(chan struct{}),
		spare: make(chan stageResult), ended: make(chan struct{}, 1), stop: make(chan struct{}), spareDone: make(chan struct{})}
	if err := s.setup(ctx, cfg, spec.Files); err != nil {
		b.destroy(j.log)
		return nil, err
	}
	j.mu.Lock()
	if j.sessions == nil {
		j.sessions = map[*Session]struct{}{}
	}
	j.sessions[s] = struct{}{}
	j.mu.Unlock()
	registered = true
	go s.readLoop()
	if err := s.giveStageBinary(ctx, stageExe); err != nil {
		close(s.spareDone) // no keepSpare to wait for
		s.Close()
		return nil, err
	}
	go s.keepSpare()
	return s, nil
}

// setup waits for the box to be built, sets the session's cgroup limits,
// sends the configuration and files, and waits until init serves; each
// step has the one-shot box's deadline.
func (s *Session) setup(ctx context.Context, cfg []byte, files []File) error {
	b, ph := s.b, s.j.phases
	readyT := time.NewTimer(ph.ready)
	defer readyT.Stop()
	select {
	case rep, ok := <-b.reports:
		if !ok || !rep.Ready {
			if rep.Error != "" {
				return errors.New("box init: " + rep.Error)
			}
			return errors.New("box init ended before it was ready")
		}
	case <-readyT.C:
		return fmt.Errorf("box not ready after %v", ph.ready)
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := b.group.Set(cgroup.Limits{
		MemoryBytes: s.lim.Memory,
		Pids:        int64(s.lim.Processes) + sessionInitThreads,
		CPUQuota:    s.lim.CPUs,
	}); err != nil {
		return err
	}
	if err := b.group.SetOOMGroup(false); err != nil {
		return err
	}
	ctrl := b.ctrl
	b.ctrl = nil
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		if _, err := ctrl.Write(frame(cfg)); err == nil {
			_ = writeFiles(ctrl, files)
		}
	}()
	// Closed on every path: a writer blocked on a dead init ends.
	defer func() { ctrl.Close(); <-fed }()
	setupFor := ph.setup + time.Duration(filesSize(files)>>20)*ph.setupPerMiB
	setupT := time.NewTimer(setupFor)
	defer setupT.Stop()
	select {
	case rep, ok := <-b.reports:
		switch {
		case ok && rep.Started:
		case rep.WorkspaceFull:
			return fmt.Errorf("%w: %s", ErrWorkspaceFull, rep.Error)
		case rep.Error != "":
			return errors.New("box init: " + rep.Error)
		default:
			return errors.New("box init ended before it served")
		}
	case <-setupT.C:
		return fmt.Errorf("session box not set up within %v", setupFor)
	case <-ctx.Done():
		return ctx.Err()
	}
	s.j.protectInit(b)
	// init closed its stdio: commands have pipes of their own.
	for _, f := range []**os.File{&b.stdin, &b.stdout, &b.stderr} {
		(*f).Close()
		*f = nil
	}
	c, err := net.FileConn(b.sock)
	if err != nil {
		return fmt.Errorf("session channel: %w", err)
	}
	b.sock.Close()
	b.sock = nil
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return errors.New("session channel is not a unix socket")
	}
	s.conn = uc
	return nil
}

// giveStageBinary sends init the first stages' binary.
func (s *Session) giveStageBinary(ctx context.Context, exe *os.File) error {
	id, ch, err := s.enter()
	if err != nil {
		return err
	}
	defer s.leave(id, ch)
	if err := s.send(boxinit.SessionRequest{ID: id, Op: boxinit.OpStageBinary}, int(exe.Fd())); err != nil {
		return err
	}
	m, err := s.wait(ctx, ch, time.Now().Add(s.j.phases.setup))
	if err != nil {
		return err
	}
	if m.fd >= 0 {
		unix.Close(m.fd)
	}
	if m.rep.Error != "" {
		return errors.New("session init: " + m.rep.Error)
	}
	return nil
}

// readLoop hands init's replies to their callers until the channel ends,
// which happens only when init is gone (nothing else holds its end).
func (s *Session) readLoop() {
	defer func() {
		s.mu.Lock()
		close(s.dead)
		s.mu.Unlock()
	}()
	buf := make([]byte, boxinit.MaxSessionReply+1)
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		n, oobn, flags, _, err := s.conn.ReadMsgUnix(buf, oob)
		if err != nil || n == 0 {
			return
		}
		fds := boxinit.ReceivedFDs(oob[:oobn])
		var rep boxinit.SessionReply
		if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || n > boxinit.MaxSessionReply || json.Unmarshal(buf[:n], &rep) != nil {
			s.j.log.Warn("malformed message from session init", "box", s.b.id, "bytes", n)
			closeFDs(fds)
			continue
		}
		msg := sessionMsg{rep: rep, fd: -1}
		if len(fds) > 0 {
			msg.fd = fds[0]
			closeFDs(fds[1:])
		}
		s.mu.Lock()
		ch := s.waiters[rep.ID]
		s.mu.Unlock()
		select {
		case ch <- msg: // a nil ch (no caller waits) never takes it
		default:
			if msg.fd >= 0 {
				unix.Close(msg.fd)
			}
		}
	}
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// enter registers a call; it fails once the session is closed or dead.
func (s *Session) enter() (uint64, chan sessionMsg, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, nil, ErrSessionClosed
	}
	select {
	case <-s.dead:
		return 0, nil, ErrSessionClosed
	default:
	}
	s.ops.Add(1)
	s.seq++
	ch := make(chan sessionMsg, 4)
	s.waiters[s.seq] = ch
	return s.seq, ch, nil
}

// leave ends a call: replies still to come for it are dropped.
func (s *Session) leave(id uint64, ch chan sessionMsg) {
	s.mu.Lock()
	delete(s.waiters, id)
	s.mu.Unlock()
	for {
		select {
		case m := <-ch:
			if m.fd >= 0 {
				unix.Close(m.fd)
			}
		default:
			s.ops.Done()
			return
		}
	}
}

// send sends one request with descriptors (which the caller closes).
func (s *Session) send(req boxinit.SessionRequest, fds ...int) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if len(b) > boxinit.MaxConfig {
		return fmt.Errorf("%w: request of %d bytes (at most %d)", ErrSpecTooLarge, len(b), boxinit.MaxConfig)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(sessionSendTime))
	if _, _, err := s.conn.WriteMsgUnix(b, oob, nil); err != nil {
		return fmt.Errorf("session channel: %w", err)
	}
	return nil
}

// wait waits for the next reply to a call, until deadline, ctx or the end
// of the session.
func (s *Session) wait(ctx context.Context, ch chan sessionMsg, deadline time.Time) (sessionMsg, error) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case m := <-ch:
		return m, nil
	case <-t.C:
		return sessionMsg{fd: -1}, errors.New("session init did not answer in time")
	case <-ctx.Done():
		return sessionMsg{fd: -1}, ctx.Err()
	case <-s.dead:
		return sessionMsg{fd: -1}, ErrSessionClosed
	}
}

// Close kills everything in the session and releases its box. It is
// idempotent, and waits for calls under way (they end at once: the box is
// dead).
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		// init's death ends its pid namespace: every command dies with it.
		s.b.kill()
		if s.conn != nil {
			s.conn.Close()
		}
		close(s.stop)
		<-s.spareDone
		for {
			select {
			case r := <-s.spare:
				if r.st != nil {
					s.discard(r.st)
				}
				continue
			default:
			}
			break
		}
		s.ops.Wait()
		s.b.destroy(s.j.log)
		s.j.mu.Lock()
		delete(s.j.sessions, s)
		s.j.mu.Unlock()
		s.j.active.Done()
	})
	return nil
}

// mergeEnv returns base with every KEY=VALUE of over replacing the same key.
func mergeEnv(base, over []string) []string {
	out := make([]string, 0, len(base)+len(over))
	key := func(kv string) string {
		k, _, _ := strings.Cut(kv, "=")
		return k
	}
	set := map[string]bool{}
	for _, kv := range over {
		set[key(kv)] = true
	}
	for _, kv := range base {
		if !set[key(kv)] {
			out = append(out, kv)
		}
	}
	return append(out, over...)
}
