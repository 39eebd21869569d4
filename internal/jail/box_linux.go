package jail

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runbox-dev/runbox/internal/cgroup"
	"github.com/runbox-dev/runbox/internal/jail/boxinit"
)

// box is one started runbox-init: namespaces made, in its cgroup, its root
// built (or being built), waiting for a RunConfig.
type box struct {
	id      uint64
	slot    *slot
	group   *cgroup.Group
	pid     int      // runbox-init, a child of the spawner
	pidfd   int      // names it even after it is reaped; -1 when gone
	stdin   *os.File // our ends of its pipes
	stdout  *os.File
	stderr  *os.File
	ctrl    *os.File
	collect *os.File
	// sock is our end of a session box's channel (boxinit.CollectFD is
	// then a SOCK_SEQPACKET socket instead of the collection pipe).
	sock    *os.File
	reportR *os.File // read by readReports into reports
	reports chan boxinit.Report
	// undead: init was not seen to exit after SIGKILL within the teardown
	// time. Its uid slot then stays claimed, so that no later box shares
	// a host uid with processes that may still run.
	undead   bool
	teardown time.Duration // how long a kill may take (phases.teardown)
}

// warmLimits hold a box until a request sets its own: a default request's
// (Defaults), so that a request with the default limits that takes a warm
// box writes none (cgroup.Group.Set skips what it wrote already).
var warmLimits = boxLimits(Defaults)

// boxLimits are the cgroup limits of a run's box: its limits, and room
// for init's own threads.
func boxLimits(l Limits) cgroup.Limits {
	return cgroup.Limits{MemoryBytes: l.Memory, Pids: int64(l.Processes) + initThreads, CPUQuota: l.CPUs}
}

// start starts a box and sends it its Config; it does not wait for it to be
// ready.
func (j *Jail) start() (*box, error) { return j.startBox(false, "") }

// sessionSendBuffer is the send buffer of the supervisor's end of a
// session channel: a SOCK_SEQPACKET message must fit in it whole, and an
// start request carries argv and environment (up to boxinit.MaxConfig).
const sessionSendBuffer = 2 * boxinit.MaxConfig

// startBox starts a box on root ("": the host's Config.Binds); a session
// box gets a channel instead of the
// collection pipe.
func (j *Jail) startBox(session bool, root string) (_ *box, err error) {
	j.mu.Lock()
	j.seq++
	b := &box{id: j.seq, pidfd: -1, teardown: j.phases.teardown}
	j.mu.Unlock()
	defer func() {
		if err != nil {
			b.destroy(j.log)
		}
	}()
	if b.slot, err = j.acquireSlot(); err != nil {
		return nil, err
	}
	if b.group, err = j.cgroups.New("box-"+strconv.FormatUint(b.id, 10), warmLimits); err != nil {
		return nil, err
	}
	// theirs collects the box's ends, in the order of its descriptors:
	// stdin's read end, stdout's and stderr's write ends, control's read
	// end, report's write end. We close them once the box holds them.
	var theirs []*os.File
	defer func() {
		for _, f := range theirs {
			f.Close()
		}
	}()
	pipe := func(ourEndReads bool) (*os.File, error) {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		if ourEndReads {
			theirs = append(theirs, w)
			return r, nil
		}
		theirs = append(theirs, r)
		return w, nil
	}
	if b.stdin, err = pipe(false); err != nil {
		return nil, err
	}
	if b.stdout, err = pipe(true); err != nil {
		return nil, err
	}
	if b.stderr, err = pipe(true); err != nil {
		return nil, err
	}
	if b.ctrl, err = pipe(false); err != nil {
		return nil, err
	}
	reportR, err := pipe(true)
	if err != nil {
		return nil, err
	}
	if session {
		pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			reportR.Close()
			return nil, fmt.Errorf("session channel: %w", err)
		}
		// SO_SNDBUFFORCE: past the host's wmem_max (root only).
		if err := unix.SetsockoptInt(pair[0], unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sessionSendBuffer); err != nil {
			_ = unix.SetsockoptInt(pair[0], unix.SOL_SOCKET, unix.SO_SNDBUF, sessionSendBuffer)
		}
		b.sock = os.NewFile(uintptr(pair[0]), "session")
		theirs = append(theirs, os.NewFile(uintptr(pair[1]), "session"))
	} else if b.collect, err = pipe(true); err != nil {
		reportR.Close()
		return nil, err
	}
	b.reportR = reportR
	b.reports = make(chan boxinit.Report, 3)
	go readReports(reportR, b.reports)

	fds := make([]int, 0, 6)
	for _, f := range theirs {
		fds = append(fds, int(f.Fd()))
	}
	cgfd := b.group.FD()
	if cgfd >= 0 {
		// cgroup v2: the spawner clones it straight into its cgroup.
		fds = append(fds, cgfd)
	}
	b.pid, b.pidfd, err = j.spawn(boxinit.SpawnRequest{
		RootID: b.slot.rootID, UserID: b.slot.userID, BoxID: BoxUID, CgroupFD: cgfd >= 0,
	}, fds)
	runtime.KeepAlive(theirs)
	if err != nil {
		return nil, err
	}
	if b.group.FD() < 0 {
		// cgroup v1: move it in before it can do anything but its own
		// setup (init blocks on its Config until then).
		if err := b.group.Enter(b.pid); err != nil {
			return nil, err
		}
	}
	warm, err := j.warmConfig(root)
	if err != nil {
		return nil, err
	}
	if err := writeMessage(b.ctrl, &warm); err != nil {
		return nil, fmt.Errorf("configure box: %w", err)
	}
	return b, nil
}

// warmNice is the nice value of a pool box's init until a request takes
// it: a box warming up for later takes the CPU it needs from requests
// running now only when they leave some. (Measured: a request that found
// a warm box waited ~1.7 ms more for the CPU the refill of the pool took
// meanwhile.)
const warmNice = 10

// setNice sets the nice value of every thread of the box's init (all of
// them run as the slot's host uid for init, which nothing else does;
// threads it makes later inherit the value). The program, forked by init
// after a request has set 0 again, starts at 0. Best effort: a nice value
// changes when a box gets the CPU, not what it may do.
func (b *box) setNice(n int) {
	_ = unix.Setpriority(unix.PRIO_USER, b.slot.rootID, n)
}

// readReports forwards init's report lines until its pipe closes.
func readReports(r *os.File, to chan<- boxinit.Report) {
	defer close(to)
	defer r.Close()
	dec := json.NewDecoder(io.LimitReader(r, 1<<16))
	for {
		var rep boxinit.Report
		if dec.Decode(&rep) != nil {
			return
		}
		to <- rep
	}
}

func (b *box) kill() {
	if b.pidfd >= 0 {
		_ = unix.PidfdSendSignal(b.pidfd, unix.SIGKILL, nil, 0)
	}
}

// killAndWait kills init and waits until it has exited, for at most
// timeout. Its exit completes only after the kernel has killed every other
// process of its pid namespace, so afterwards nothing of the box runs and
// every pipe end the box held is closed. It reports whether init was seen
// to exit; if not, the box is marked undead.
func (b *box) killAndWait(timeout time.Duration) bool {
	if b.pidfd < 0 {
		return !b.undead
	}
	b.kill()
	ok := waitExit(b.pidfd, timeout)
	unix.Close(b.pidfd)
	b.pidfd = -1
	if !ok {
		b.undead = true
	}
	return ok
}

// waitExit waits until the process pidfd names has exited (the pidfd turns
// readable), for at most timeout.
func waitExit(pidfd int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		ms := time.Until(deadline).Milliseconds() + 1
		if ms <= 1 {
			return false
		}
		n, err := unix.Poll(fds, int(min(ms, 1<<30)))
		switch {
		case err == unix.EINTR:
		case err != nil:
			return false
		case n > 0:
			return true
		}
	}
}

// protectInit makes runbox-init the one process of its box that the OOM
// killer never picks (oom_score_adj -1000; the killer also spares it when
// cgroup v2's memory.oom.group kills the rest), so that it always reports
// the program's end. Lowering oom_score_adj takes CAP_SYS_RESOURCE over
// the host, which only the supervisor has, if anyone. It is done once init
// has forked the program (the Started report): a child inherits
// oom_score_adj and its floor, and the program must stay killable. See
// also preferOOMVictim in boxinit, which works without the capability.
func (j *Jail) protectInit(b *box) {
	if j.oomUnprotected.Load() {
		return
	}
	err := b.setInitOOMScoreAdj()
	switch {
	case err == nil, errors.Is(err, unix.ESRCH), errors.Is(err, unix.ENOENT):
		// Done, or a short program is over and init gone already.
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		// No CAP_SYS_RESOURCE: the program's processes are still the
		// killer's first choice (init gives them oom_score_adj 1000).
		if !j.oomUnprotected.Swap(true) {
			j.log.Info("cannot lower runbox-init's oom_score_adj (no CAP_SYS_RESOURCE); relying on the program's 1000", "err", err)
		}
	default:
		j.log.Warn("protect init from the OOM killer", "box", b.id, "err", err)
	}
}

func (b *box) setInitOOMScoreAdj() error {
	dir, err := unix.Open("/proc/"+strconv.Itoa(b.pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	// init's pidfd still names a live process, so the directory opened
	// above is init's and not that of a process that reused its pid.
	if err := unix.PidfdSendSignal(b.pidfd, 0, nil, 0); err != nil {
		return err
	}
	fd, err := unix.Openat(dir, "oom_score_adj", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, err = unix.Write(fd, []byte("-1000"))
	return err
}

// destroy kills whatever is left of the box and releases everything it
// held. It is safe on a partly started box, and bounded: a box that does
// not die keeps its uid slot and is logged.
func (b *box) destroy(log *slog.Logger) {
	for _, f := range []*os.File{b.stdin, b.stdout, b.stderr, b.ctrl, b.collect, b.sock} {
		if f != nil {
			f.Close()
		}
	}
	b.killAndWait(b.teardown)
	if b.reportR != nil {
		b.reportR.Close() // ends readReports even if init lives on
	}
	if b.reports != nil {
		for range b.reports { // drained: the reader ends once init is gone
		}
		b.reports = nil
	}
	if b.group != nil {
		if err := b.group.Kill(); err != nil {
			log.Error("kill box cgroup", "box", b.id, "err", err)
		}
		if err := b.group.Remove(); err != nil {
			log.Error("remove box cgroup", "box", b.id, "err", err)
		}
		b.group = nil
	}
	if b.slot != nil {
		if b.undead {
			log.Error("box did not die after SIGKILL; its uid slot stays claimed", "box", b.id, "timeout", b.teardown)
		} else {
			b.slot.release()
		}
		b.slot = nil
	}
}
