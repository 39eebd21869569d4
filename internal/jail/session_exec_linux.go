package jail

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runbox-dev/runbox/internal/cgroup"
	"github.com/runbox-dev/runbox/internal/jail/boxinit"
)

// Exec runs one command in the session and waits for its end. As with
// Run, the command failing in any way (a limit included) is a Result; an
// error means runbox or the session failed. CPU time and OOM kills are
// the command's and its descendants'; Memory is the session's peak.
// Cancelling ctx kills the command, not the session.
func (s *Session) Exec(ctx context.Context, cmd CommandSpec) (Result, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return internal(ErrSessionClosed)
	}
	lim := s.lim
	if cmd.WallTime != 0 {
		lim.WallTime = cmd.WallTime
	}
	if cmd.CPUTime != 0 {
		lim.CPUTime = cmd.CPUTime
	}
	if cmd.Output != 0 {
		lim.Output = cmd.Output
	}
	if cmd.OpenFiles != 0 {
		lim.OpenFiles = cmd.OpenFiles
	}
	if err := lim.Validate(); err != nil {
		return internal(fmt.Errorf("limits: %w", err))
	}
	if len(cmd.Argv) == 0 || cmd.Argv[0] == "" {
		return internal(errors.New("empty command"))
	}
	dir := cmd.Dir
	if dir == "" {
		dir = s.dir
	}
	env := mergeEnv(s.env, cmd.Env)
	if err := checkSpec(Spec{Argv: cmd.Argv, Env: env, Dir: dir, Limits: lim}); err != nil {
		return internal(err)
	}
	if cmd.Control != nil {
		if err := cmd.Control.claim(); err != nil {
			return internal(err)
		}
		// Whether it ran or not, the command is over when Exec returns
		// (exec ends a Control it started before it closes anything).
		defer cmd.Control.end()
	}
	var res Result
	var err error
	stdin := &countingReader{r: cmd.Stdin}
	for attempt := 0; ; attempt++ {
		var st *stage
		st, err = s.takeStage(ctx)
		if err != nil {
			var fe forkError
			if errors.As(err, &fe) {
				// The session's process limit (or memory) refused the
				// fork: the command's result, as a failed exec is in a
				// one-shot box.
				return Result{Status: StatusRuntimeError, ExitCode: 127, Message: "cannot execute " + fe.msg}, nil
			}
			return internal(err)
		}
		res, err = s.exec(ctx, st, cmd, stdin, env, dir, lim)
		// The command and all it started are dead when exec returns (it
		// kills the command's cgroup); removing the empty cgroup, and
		// making the next stage, need not hold the result. Close waits
		// for both.
		go func() {
			s.discard(st)
			s.commandEnded()
		}()
		// A stage killed before it took its command: the command never
		// ran, and runs on another, unless its stdin was read already.
		if errors.Is(err, errStageGone) && attempt < 3 && stdin.n.Load() == 0 {
			continue
		}
		break
	}
	if err != nil {
		res.Status = StatusInternalError
		res.Message = "runbox failed: " + err.Error()
	}
	return res, err
}

// cmdPipes are our ends of a command's stdio and the ends it takes, as
// pipes or as a terminal (newCmdPTY): then stdin and stdout are both its
// master, stderr is nil, and the three of theirs are its slave. Merged
// pipes (newCmdPipes(true)) have no stderr of ours either: the command's
// stderr is its stdout's write end.
type cmdPipes struct {
	stdin, stdout, stderr *os.File // ours
	theirs                []*os.File
	tty                   bool
}

// newCmdPipes makes a command's pipes; with merge, one pipe serves as its
// stdout and its stderr, so that what it writes to either keeps its order.
func newCmdPipes(merge bool) (*cmdPipes, error) {
	p := &cmdPipes{}
	var err error
	pair := func(oursWrites bool) *os.File {
		if err != nil {
			return nil
		}
		var r, w *os.File
		if r, w, err = os.Pipe(); err != nil {
			return nil
		}
		if oursWrites {
			p.theirs = append(p.theirs, r)
			return w
		}
		p.theirs = append(p.theirs, w)
		return r
	}
	p.stdin, p.stdout = pair(true), pair(false)
	if merge && err == nil {
		// The same write end twice: init passes it on as descriptors 1
		// and 2 of the command (closeTheirs closes it once; a second
		// Close of the same *os.File is a no-op error).
		p.theirs = append(p.theirs, p.theirs[1])
	} else {
		p.stderr = pair(false)
	}
	if err != nil {
		p.closeTheirs()
		p.closeOurs()
		return nil, err
	}
	return p, nil
}

func (p *cmdPipes) closeTheirs() {
	for i, f := range p.theirs {
		if i == 0 || !p.tty {
			f.Close()
		}
	}
	p.theirs = nil
}

func (p *cmdPipes) closeOurs() {
	p.stdin.Close()
	if !p.tty {
		p.stdout.Close()
		p.stderr.Close() // nil when merged: a no-op
	}
}

// errStageGone: the command's first stage died before it took the command.
var errStageGone = errors.New("the command's first stage was killed before it started")

// countingReader counts what was read of a command's stdin. (A terminal's
// feeder may still read when Exec returns: see CommandSpec.TTY.)
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

func (s *Session) exec(ctx context.Context, st *stage, cmd CommandSpec, cmdStdin *countingReader, env []string, dir string, lim Limits) (Result, error) {
	var res Result
	ph := s.j.phases
	group, ch := st.group, st.ch
	var pipes *cmdPipes
	var err error
	if cmd.TTY != nil {
		pipes, err = newCmdPTY(*cmd.TTY)
	} else {
		pipes, err = newCmdPipes(cmd.MergeOutput)
	}
	if err != nil {
		return res, err
	}
	defer pipes.closeOurs()
	base, err := group.Stats()
	if err != nil {
		return res, err
	}
	// On cgroup v2 a command's group has no memory controller (see
	// cgroup.Group.Child): its OOM kills are read from the box's group,
	// where a command running at the same time may add its own.
	// (Read only there: on v1 the command's own group counts them.)
	var boxBase cgroup.Stats
	if group.Version() == cgroup.V2 {
		if boxBase, err = s.b.group.Stats(); err != nil {
			return res, err
		}
	}
	oomKills := func(cmd cgroup.Stats) int64 {
		if group.Version() != cgroup.V2 {
			return cmd.OOMKills
		}
		if st, err := s.b.group.Stats(); err == nil {
			return st.OOMKills - boxBase.OOMKills
		}
		return 0
	}
	nofile := uint64(lim.OpenFiles)
	// A backstop for the CPU accounting of the command's cgroup: the
	// kernel itself stops any one process a second past the limit.
	cpu := uint64(math.Ceil(lim.CPUTime.Seconds())) + 1
	fds := []int{int(pipes.theirs[0].Fd()), int(pipes.theirs[1].Fd()), int(pipes.theirs[2].Fd())}
	// A terminal is typed into, and a Control attached, once the command
	// runs: not on a stage that dies before it takes the command (Exec
	// runs the command on another then).
	var note *startNote
	if cmd.TTY != nil || cmd.Control != nil {
		if note, err = newStartNote(); err != nil {
			pipes.closeTheirs()
			return res, err
		}
		defer note.finish()
		fds = append(fds, int(note.w.Fd()))
	}
	err = s.send(boxinit.SessionRequest{ID: st.id, Op: boxinit.OpStart, Argv: cmd.Argv, Env: env, Dir: boxinit.Exact{dir},
		Rlimits: []boxinit.Rlimit{
			{Resource: unix.RLIMIT_NOFILE, Cur: nofile, Max: nofile},
			{Resource: unix.RLIMIT_CPU, Cur: cpu, Max: cpu + 1},
			// Counted per host uid, which is this session's alone.
			{Resource: unix.RLIMIT_NPROC, Cur: uint64(lim.Processes), Max: uint64(lim.Processes)},
		},
		TTY: cmd.TTY != nil, Notify: note != nil},
		fds...)
	// Ours no longer: the box holds the only copies (a terminal's slave
	// included, so that its last close by the command ends the output).
	pipes.closeTheirs()
	note.closeTheirs()
	if err != nil {
		return res, err
	}
	st.started = true
	preferVictim(st.pid, st.pidfd)
	started := time.Now()

	stdin := pipes.stdin
	fed := make(chan struct{})
	switch {
	case pipes.tty:
		// Typed once the command has started (running).
	case cmd.Stdin != nil:
		go func() {
			defer close(fed)
			_, _ = io.Copy(stdin, cmdStdin)
			stdin.Close()
		}()
	default:
		stdin.Close()
		close(fed)
	}
	// With a Control, the live copies of the output wait until it has
	// begun (as a run's wait for its Started report): a client that has
	// seen the command's output can signal it. The gate opens then, or
	// when the loop below ends.
	stdoutTee, stderrTee, openGate := cmd.StdoutTee, cmd.StderrTee, func() {}
	if cmd.Control != nil {
		stdoutTee, stderrTee, openGate = gateOutputs(stdoutTee, stderrTee)
	}
	defer openGate()
	running := false
	control := func() {
		running = true
		if cmd.Control != nil {
			h := &sessionCommand{pidfd: st.pidfd, group: group}
			if pipes.tty {
				h.master = pipes.stdin
			}
			cmd.Control.begin(h)
		}
		openGate()
	}
	run := func() {
		control()
		if pipes.tty {
			var in io.Reader
			if cmd.Stdin != nil {
				in = cmdStdin
			}
			go feedTTY(stdin, in)
		}
	}
	var readers sync.WaitGroup
	var stderr io.Reader // none with a terminal
	if pipes.stderr != nil {
		stderr = pipes.stderr
	}
	outs := captureOutputs(lim.Output, stdoutTee, stderrTee, pipes.stdout, stderr, &readers)

	var (
		final   *boxinit.Report
		killed  bool
		why     Status
		message string
		failure error
		usage   cgroup.Stats
	)
	wall := time.NewTimer(lim.WallTime)
	defer wall.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var dying <-chan time.Time
	kill := func(st Status, msg string) {
		if killed {
			return
		}
		killed, why, message = true, st, msg
		// Every process of the command, and only of the command.
		if err := group.Kill(); err != nil {
			s.j.log.Error("kill command", "box", s.b.id, "err", err)
		}
		dying = time.After(ph.teardown)
	}
loop:
	for {
		select {
		case m := <-ch:
			if m.fd >= 0 {
				unix.Close(m.fd)
			}
			switch {
			case m.rep.ExecError != "":
				final = &boxinit.Report{ExecError: m.rep.ExecError}
				break loop
			case m.rep.Error != "":
				final = &boxinit.Report{Error: m.rep.Error}
				break loop
			case m.rep.Exited && !m.rep.Started:
				failure = errStageGone
				break loop
			case m.rep.Exited:
				final = &boxinit.Report{Exited: true, ExitCode: m.rep.ExitCode, Signal: m.rep.Signal, WallNanos: m.rep.WallNanos}
				break loop
			}
		case <-wall.C:
			kill(StatusTimeLimit, "wall-clock time limit of "+lim.WallTime.String()+" exceeded")
		case <-outs.overflow:
			kill(StatusOutputLimit, "output limit of "+strconv.FormatInt(lim.Output, 10)+" bytes per stream exceeded")
		case <-ctx.Done():
			kill(StatusInternalError, "cancelled: "+ctx.Err().Error())
		case <-tick.C:
			st, err := group.Stats()
			if err != nil {
				continue
			}
			usage = st.Since(base)
			usage.OOMKills = oomKills(usage)
			if usage.CPUTime >= lim.CPUTime {
				kill(StatusTimeLimit, "CPU time limit of "+lim.CPUTime.String()+" exceeded")
			} else if usage.OOMKills > 0 {
				kill(StatusMemoryLimit, "memory limit of "+strconv.FormatInt(lim.Memory, 10)+" bytes exceeded")
			}
		case <-dying:
			failure = errors.New("command did not end after its kill")
			break loop
		case <-s.dead:
			failure = errors.New("session ended while the command ran")
			break loop
		case <-note.ready():
			run()
		}
	}
	// The command's own process is gone: what it started goes too, as a
	// one-shot box's init kills the rest at its program's end.
	if err := group.Kill(); err != nil {
		s.j.log.Error("kill command", "box", s.b.id, "err", err)
	}
	if note != nil {
		if note.finish() {
			// It started and ended before the loop heard of it: its
			// Control still says it ran.
			control()
		}
		if running && cmd.Control != nil {
			// Before its descriptors close (here and in discard).
			cmd.Control.end()
		}
	}
	openGate()
	// Every writer of the output pipes is dead, unless another command was
	// handed them: read what is left, for a bounded time. (A terminal's
	// master reads EIO once the last slave has closed.)
	_ = pipes.stdout.SetReadDeadline(time.Now().Add(drainGrace))
	if pipes.stderr != nil {
		_ = pipes.stderr.SetReadDeadline(time.Now().Add(drainGrace))
	}
	readers.Wait()
	if pipes.tty {
		// A feeder blocked on a terminal nobody reads fails now; one
		// blocked in the caller's Read is not waited for.
		_ = stdin.SetWriteDeadline(time.Now())
	} else {
		// A feeder blocked on a command that never read fails now; one
		// blocked in the caller's Read is not waited for (the caller
		// ends its Reader: a socket's stdin stays open until the client
		// closes it, long after the command may have ended). A command
		// whose stage died before it started is run again only once
		// the feeder is done, so that no two feeders read the Reader.
		stdin.Close()
		if errors.Is(failure, errStageGone) {
			select {
			case <-fed:
			case <-time.After(drainGrace):
				failure = errors.New("the command's first stage was killed before it started, while its stdin was being read")
			}
		}
	}
	if st, err := group.Stats(); err == nil {
		usage = st.Since(base)
		usage.OOMKills = oomKills(usage)
	}
	if st, err := s.b.group.Stats(); err == nil {
		usage.MemoryPeak = st.MemoryPeak
	}
	outs.into(&res)
	res.CPUTime = usage.CPUTime
	res.Memory = usage.MemoryPeak
	if final != nil && final.WallNanos > 0 {
		res.WallTime = time.Duration(final.WallNanos)
	} else {
		res.WallTime = time.Since(started)
	}
	return classify(ctx, res, lim, usage, final, killed, why, message, failure)
}

// place moves a command's waiting first stage into its cgroup. The stage
// waits on init until it is given its command, and is a child of init: its
// host pid is not reused before init reaps it. Another command may kill it
// meanwhile; the check after the move sees it gone.
func place(group *cgroup.Group, pid, pidfd int) error {
	if err := group.Enter(pid); err != nil {
		return err
	}
	if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil {
		return fmt.Errorf("command process gone: %w", err)
	}
	return nil
}

// preferVictim makes a started command the OOM killer's first choice
// (oom_score_adj 1000). Written with CAP_SYS_RESOURCE, where the
// supervisor holds it, it is also the process's floor, so a command cannot
// make itself less of a victim than init; without it, the first stage
// raises its own score (which needs no privilege) and this write fails.
func preferVictim(pid, pidfd int) {
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/oom_score_adj", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	if unix.PidfdSendSignal(pidfd, 0, nil, 0) == nil {
		_, _ = unix.Write(fd, []byte("1000"))
	}
}

// pidfdPid reads the host pid a pidfd names from /proc/self/fdinfo.
func pidfdPid(pidfd int) (int, error) {
	f, err := os.Open("/proc/self/fdinfo/" + strconv.Itoa(pidfd))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Pid:"); ok {
			pid, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || pid <= 0 {
				return 0, fmt.Errorf("pidfd names no live process (%q)", v)
			}
			return pid, nil
		}
	}
	return 0, errors.New("pidfd: no Pid in fdinfo")
}
