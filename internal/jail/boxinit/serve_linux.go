package boxinit

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sessionRoots are the writable areas a session's file operations reach.
var sessionRoots = []string{"/box", "/tmp"}

// maxFileOps bounds the file operations init runs at once; more are
// refused with EBUSY rather than queued.
const maxFileOps = 8

// serveSession is the rest of init's life in a session box: with the box
// built and its files extracted, init takes the same steps it takes before
// a one-shot program's exec — rlimits, no capabilities in the bounding or
// ambient sets, no_new_privs, the seccomp filter on every thread — and then
// serves the supervisor's requests on CollectFD until the supervisor closes
// it. Then init exits, and the kernel kills every process left in the pid
// namespace: nothing a command started outlives its session.
//
// A command cannot reach this channel: every descriptor of init above
// stdio is close-on-exec (Main), init runs as another uid than the
// commands and is non-dumpable (no /proc/1/fd, no ptrace, no signal from
// them), and the seccomp filter refuses ptrace, pidfd_getfd and
// process_vm_*.
func serveSession(rep *reporter, cfg *Config, rc *RunConfig) (int, error) {
	s := &server{
		sock:     CollectFD,
		uid:      cfg.UID,
		gid:      cfg.GID,
		roots:    map[string]int{},
		byID:     map[uint64]*command{},
		byPid:    map[int]*command{},
		fileOps:  make(chan struct{}, maxFileOps),
		stageExe: -1,
	}
	if t, err := unix.GetsockoptInt(s.sock, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || t != unix.SOCK_SEQPACKET {
		return 0, fmt.Errorf("session channel is not a SOCK_SEQPACKET socket (%v)", err)
	}
	// The writable areas as they are now, before any command can run: a
	// command cannot replace a mount point, and every file operation
	// resolves beneath one of these descriptors.
	for _, d := range sessionRoots {
		fd, err := unix.Open(d, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, fmt.Errorf("open %s: %w", d, err)
		}
		s.roots[d] = fd
	}
	// RLIMIT_NOFILE, RLIMIT_CPU and RLIMIT_NPROC are each command's own:
	// its first stage sets them before it executes (the supervisor leaves
	// them out of rc.Rlimits).
	if err := lockDown(rc); err != nil {
		return 0, err
	}
	// SIGCHLD before the first fork, so that no exit is missed.
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	if err := rep.send(Report{Started: true}); err != nil {
		return 0, err
	}
	// The supervisor's stdio pipes are not for commands: each has its own.
	for fd := 0; fd < 3; fd++ {
		unix.Close(fd)
	}
	reqs := make(chan request, 16)
	go s.read(reqs)
	for {
		select {
		case r, ok := <-reqs:
			if !ok {
				return 0, nil // the supervisor closed the session
			}
			s.handle(r)
		case <-chld:
			s.reap()
		}
	}
}

type server struct {
	sock     int
	uid, gid int
	roots    map[string]int
	// Commands, by request id and by pid; only the main loop uses them.
	byID    map[uint64]*command
	byPid   map[int]*command
	fileOps chan struct{} // a semaphore
	sendMu  sync.Mutex
	// stageExe is the first stages' binary (OpStageBinary), or -1.
	stageExe int
}

// command is one forked command.
type command struct {
	id    uint64
	pid   int
	sock  int // init's end of the socket its first stage waits on; -1 once used
	start time.Time
}

type request struct {
	req SessionRequest
	fds []int
	err error
}

// read turns the channel's packets into requests until it closes.
func (s *server) read(out chan<- request) {
	defer close(out)
	buf := make([]byte, MaxConfig+4096)
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		n, oobn, flags, _, err := unix.Recvmsg(s.sock, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return
		}
		r := request{fds: ReceivedFDs(oob[:oobn])}
		if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
			r.err = errors.New("session request truncated")
		} else if err := json.Unmarshal(buf[:n], &r.req); err != nil {
			r.err = fmt.Errorf("session request: %w", err)
		}
		out <- r
	}
}

func (s *server) handle(r request) {
	q := r.req
	if r.err != nil {
		closeAll(r.fds)
		s.send(SessionReply{ID: q.ID, Error: bounded(r.err.Error())}, -1)
		return
	}
	switch q.Op {
	case OpFork:
		closeAll(r.fds)
		s.fork(q)
	case OpStart:
		s.start(q, r.fds)
	case OpStageBinary:
		if len(r.fds) != 1 || s.stageExe >= 0 {
			closeAll(r.fds)
			s.send(SessionReply{ID: q.ID, Error: "malformed stage binary"}, -1)
			return
		}
		// Above every number a fork maps the child's descriptors to (0-3):
		// received descriptors take the lowest free numbers, and init's
		// stdio is closed.
		s.stageExe = relocate(r.fds[0], 16)
		s.send(SessionReply{ID: q.ID}, -1)
	case OpAbort:
		closeAll(r.fds)
		if c := s.byID[q.ID]; c != nil && c.sock >= 0 {
			unix.Close(c.sock) // the first stage reads end of file, and exits
			c.sock = -1
		}
	case OpRead, OpWrite, OpList, OpRemove:
		select {
		case s.fileOps <- struct{}{}:
			// File operations run beside the loop: they touch no
			// command state and may wait on their pipe (bounded by
			// their deadline).
			go func() {
				defer func() { <-s.fileOps }()
				s.send(s.fileOp(q, r.fds), -1)
			}()
		default:
			closeAll(r.fds)
			s.send(SessionReply{ID: q.ID, Error: "too many file operations at once", Errno: int(unix.EBUSY)}, -1)
		}
	default:
		closeAll(r.fds)
		s.send(SessionReply{ID: q.ID, Error: "unknown operation " + shortName(q.Op)}, -1)
	}
}

// fork forks a command's first stage (runbox-init in its ExecArg role) as
// the box's user, and replies with its pidfd. It executes the copy of
// runbox-init the supervisor sent (OpStageBinary), which the box's ids may
// execute but not read: the kernel makes such a process non-dumpable from
// its first instruction, its /proc entries owned by host root (would_dump
// in fs/exec.c), so that no command, which runs as the same uid, can open
// its memory or descriptors or trace it while it waits. It holds no descriptor but
// its end of a stream socket from init (descriptor 3): the command's stdio
// comes with the command (start). The fork runs on this goroutine, which
// holds init's locked main thread, on which the bounding set was emptied
// and no_new_privs set.
func (s *server) fork(q SessionRequest) {
	if s.byID[q.ID] != nil {
		s.send(SessionReply{ID: q.ID, Error: "duplicate command id"}, -1)
		return
	}
	p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		s.send(SessionReply{ID: q.ID, ExecError: "socketpair: " + err.Error()}, -1)
		return
	}
	if s.stageExe < 0 {
		unix.Close(p[0])
		unix.Close(p[1])
		s.send(SessionReply{ID: q.ID, Error: "no first-stage binary"}, -1)
		return
	}
	pidfd := -1
	closed := ^uintptr(0) // -1: closed in the child
	// The path is resolved by execve before close-on-exec closes stageExe.
	pid, err := syscall.ForkExec("/proc/self/fd/"+strconv.Itoa(s.stageExe), []string{"runbox-init", ExecArg}, &syscall.ProcAttr{
		Dir: "/",
		// One P: the stage only waits, then executes its command. With
		// GOMAXPROCS set the Go runtime neither reads the cgroup files for
		// a default nor starts a thread per CPU, and execve has fewer
		// threads to end. (The command gets its own environment.)
		Env:   []string{"GOMAXPROCS=1"},
		Files: []uintptr{closed, closed, closed, uintptr(p[1])},
		Sys: &syscall.SysProcAttr{
			// A new session with no controlling terminal.
			Setsid:     true,
			Credential: &syscall.Credential{Uid: uint32(s.uid), Gid: uint32(s.gid), NoSetGroups: true},
			Pdeathsig:  syscall.SIGKILL,
			PidFD:      &pidfd,
		},
	})
	unix.Close(p[1])
	if err != nil {
		unix.Close(p[0])
		// EAGAIN at the session's process limit, among others.
		s.send(SessionReply{ID: q.ID, ExecError: bounded("fork: " + err.Error())}, -1)
		return
	}
	c := &command{id: q.ID, pid: pid, sock: p[0]}
	s.byID[q.ID], s.byPid[pid] = c, c
	s.send(SessionReply{ID: q.ID, Forked: true}, pidfd)
	if pidfd >= 0 {
		unix.Close(pidfd)
	}
}

// start hands a waiting first stage its command and stdio. The stage
// reads it at once (it waits for nothing else); the bytes beyond one
// socket buffer are written from a goroutine, so that a stage killed
// meanwhile cannot hold the loop.
func (s *server) start(q SessionRequest, fds []int) {
	c := s.byID[q.ID]
	fail := func(rep SessionReply) {
		closeAll(fds)
		if c != nil && c.sock >= 0 {
			unix.Close(c.sock)
			c.sock = -1
		}
		rep.ID = q.ID
		s.send(rep, -1)
	}
	if c == nil {
		// Reaped already: a command of the same uid killed the waiting
		// stage. Its end was reported (Exited, not Started); so is this.
		fail(SessionReply{Exited: true})
		return
	}
	if c.sock < 0 || len(fds) != shimFDs(q.Notify) || len(q.Argv) == 0 || len(q.Dir) != 1 {
		fail(SessionReply{Error: "malformed start request"})
		return
	}
	path, err := lookPath(q.Argv[0], q.Env)
	if err != nil {
		fail(SessionReply{ExecError: bounded(err.Error())})
		return
	}
	shim := ShimCommand{Path: path, Argv: q.Argv, Env: q.Env, Dir: q.Dir, Rlimits: q.Rlimits, TTY: q.TTY, Notify: q.Notify}
	b, err := shim.MarshalBinary()
	if err != nil || len(b) > MaxConfig {
		fail(SessionReply{Error: "command too large"})
		return
	}
	msg := make([]byte, 4, 4+len(b))
	binary.LittleEndian.PutUint32(msg, uint32(len(b)))
	msg = append(msg, b...)
	// The socket stays open until the stage is reaped: the stage writes
	// one byte on it just before it executes the command (see reap).
	c.start = time.Now()
	first := min(len(msg), 32<<10)
	err = unix.Sendmsg(c.sock, msg[:first], unix.UnixRights(fds...), nil, 0)
	closeAll(fds) // the stage holds them now
	if err != nil || first == len(msg) {
		return // an error: the stage is gone, which its reaping reports
	}
	// The rest from a goroutine, on a descriptor of its own: the loop
	// closes c.sock when it reaps the stage.
	rest, err := unix.FcntlInt(uintptr(c.sock), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return
	}
	go func() {
		_ = writeAll(rest, msg[first:])
		unix.Close(rest)
	}()
}

// reap collects every exited child: a command's own process is reported,
// orphans that were reparented to init are only reaped.
func (s *server) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		c := s.byPid[pid]
		if c == nil {
			continue
		}
		delete(s.byPid, pid)
		delete(s.byID, c.id)
		// Started: the stage took its command (it wrote its byte just
		// before executing it, and the byte outlives it in the socket).
		// A stage that another command of the same uid killed — even
		// while it was dying as init sent the command — never did: the
		// supervisor then runs the command on another stage.
		started := false
		if c.sock >= 0 {
			var b [1]byte
			n, _, _ := unix.Recvfrom(c.sock, b[:], unix.MSG_DONTWAIT)
			started = n == 1 && !c.start.IsZero()
			unix.Close(c.sock)
		}
		rep := SessionReply{ID: c.id, Exited: true, Started: started}
		if started {
			rep.WallNanos = int64(time.Since(c.start))
		}
		if ws.Signaled() {
			rep.Signal = int(ws.Signal())
		} else {
			rep.ExitCode = ws.ExitStatus()
		}
		s.send(rep, -1)
	}
}

// send writes one reply, with a descriptor when fd >= 0. The supervisor
// reads its end all the time; a supervisor gone ends init at its next read.
func (s *server) send(rep SessionReply, fd int) {
	b, err := json.Marshal(rep)
	if err != nil || len(b) > MaxSessionReply {
		b, _ = json.Marshal(SessionReply{ID: rep.ID, Error: "reply too large"})
		fd = -1
	}
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	for {
		if err := unix.Sendmsg(s.sock, b, oob, nil, 0); err != unix.EINTR {
			return
		}
	}
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// execShim is a command's first stage: it waits on descriptor 3 until
// init sends the command, which happens once the supervisor has placed this
// process in the command's cgroup; end of file means abort. Nothing the
// command runs can start before it is in its cgroup, so nothing escapes
// the command's CPU accounting or its kill.
func execShim() {
	// Its name in /proc (otherwise the descriptor number it was executed
	// from) until the command's own replaces it.
	setName(StageName)
	cmd, fds, err := readShimCommand(3)
	if err != nil || len(fds) != shimFDs(cmd.Notify) || len(cmd.Argv) == 0 || len(cmd.Dir) != 1 {
		os.Exit(126)
	}
	// The command's stdio: moved clear of 0-2 first (received descriptors
	// take the lowest free numbers), then onto them, without close-on-exec.
	// The notification pipe stays where it is, close-on-exec.
	for i := range fds {
		if fd, err := unix.FcntlInt(uintptr(fds[i]), unix.F_DUPFD_CLOEXEC, 10); err == nil {
			unix.Close(fds[i])
			fds[i] = fd
		}
	}
	for i, fd := range fds[:3] {
		if err := unix.Dup3(fd, i, 0); err != nil {
			os.Exit(126)
		}
		unix.Close(fd)
	}
	// From here on the command has started, whatever happens to it: one
	// byte back to init says so (see reap in serveSession); then one to
	// the supervisor, when it asked (never before init's: a command that
	// the supervisor saw start is one init saw start, never run twice).
	_ = writeAll(3, []byte{1})
	unix.Close(3)
	if cmd.Notify {
		_ = writeAll(fds[3], []byte{1})
		unix.Close(fds[3])
	}
	fail := func(what string, err error) {
		os.Stderr.WriteString("runbox: cannot execute " + shortName(cmd.Argv[0]) + ": " + what + ": " + err.Error() + "\n")
		os.Exit(127)
	}
	if cmd.TTY {
		// The terminal becomes this process's controlling terminal, for
		// job control and for ^C and ^Z typed into it. The process leads
		// a session of its own with none (init forks it with Setsid), the
		// terminal is a fresh one that leads no other session, so no
		// privilege is needed (and arg 0 steals from nobody).
		if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
			fail("controlling terminal", err)
		}
	}
	// The command's own limits. Set from inside: the supervisor lacks
	// CAP_SYS_RESOURCE on some hosts. (Its oom_score_adj is set from
	// outside: this process cannot open its own /proc entries, see fork.)
	if err := setRlimits(cmd.Rlimits); err != nil {
		fail("rlimits", err)
	}
	if err := unix.Chdir(cmd.Dir[0]); err != nil {
		fail("chdir "+shortName(cmd.Dir[0]), err)
	}
	fail("exec", syscall.Exec(cmd.Path, cmd.Argv, cmd.Env))
}

// shimFDs is how many descriptors come with a command: stdin, stdout,
// stderr, and the notification pipe when asked for.
func shimFDs(notify bool) int {
	if notify {
		return 4
	}
	return 3
}

// StageName is a waiting first stage's name in /proc/<pid>/comm.
const StageName = "runbox-stage"

// readShimCommand reads the length-prefixed ShimCommand and the
// descriptors that come with it from a stream socket.
func readShimCommand(sock int) (ShimCommand, []int, error) {
	var cmd ShimCommand
	var fds []int
	var data []byte
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4*4))
	want := -1
	for want < 0 || len(data) < 4+want {
		n, oobn, _, _, err := unix.Recvmsg(sock, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			closeAll(fds)
			return cmd, nil, errors.New("no command")
		}
		fds = append(fds, ReceivedFDs(oob[:oobn])...)
		data = append(data, buf[:n]...)
		if want < 0 && len(data) >= 4 {
			want = int(binary.LittleEndian.Uint32(data))
			if want > MaxConfig {
				closeAll(fds)
				return cmd, nil, errors.New("command too large")
			}
		}
	}
	if err := cmd.UnmarshalBinary(data[4 : 4+want]); err != nil {
		closeAll(fds)
		return cmd, nil, err
	}
	return cmd, fds, nil
}
