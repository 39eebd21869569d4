package jail

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runbox-dev/runbox/internal/cgroup"
	"github.com/runbox-dev/runbox/internal/jail/boxinit"
)

// pollInterval is how often CPU time and OOM kills are read from the cgroup
// while a box runs.
const pollInterval = 10 * time.Millisecond

// initThreads is the pids allowance for runbox-init itself (a Go program
// runs a few threads) on top of the program's own limit; RLIMIT_NPROC, which
// counts only the program's uid, holds the program to its exact limit.
const initThreads = 16

// Per-user kernel counts a box's program may hold (see runConfig).
const (
	sigPending    = 1024
	msgQueueBytes = 256 << 10
)

// Run runs spec in a fresh box and waits for it to end. The program failing
// in any way is a Result; an error means runbox itself failed, and the
// Result then has StatusInternalError. Cancelling ctx kills the box.
func (j *Jail) Run(ctx context.Context, spec Spec) (Result, error) {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return internal(errors.New("jail is closed"))
	}
	j.active.Add(1)
	j.mu.Unlock()
	defer j.active.Done()

	spec.Limits = spec.Limits.WithDefaults(Defaults)
	if err := spec.Limits.Validate(); err != nil {
		return internal(fmt.Errorf("limits: %w", err))
	}
	if len(spec.Argv) == 0 || spec.Argv[0] == "" {
		return internal(errors.New("empty command"))
	}
	// What no box can take is refused before one is taken.
	if err := checkSpec(spec); err != nil {
		return internal(err)
	}
	cfg, err := json.Marshal(j.runConfig(spec))
	if err != nil {
		return internal(err)
	}
	if len(cfg) > boxinit.MaxConfig {
		return internal(fmt.Errorf("%w: the run's configuration is %d bytes as runbox-init reads it (at most %d)", ErrSpecTooLarge, len(cfg), boxinit.MaxConfig))
	}
	b, err := j.take()
	if err != nil {
		j.log.Error("box failed to start", "err", err)
		return internal(err)
	}
	defer b.destroy(j.log)
	res, err := b.run(ctx, j, spec, cfg)
	if err != nil {
		if errors.Is(err, ErrWorkspaceFull) {
			j.log.Info("workspace files do not fit", "box", b.id, "err", err)
		} else {
			j.log.Error("box failed", "box", b.id, "err", err)
		}
		res.Status = StatusInternalError
		res.Message = "runbox failed: " + err.Error()
	}
	return res, err
}

// checkSpec refuses a spec that cannot run because of what it asks: an
// argv or environment larger than a box accepts (runbox-init reads its
// configuration with a bound), or files larger than the workspace. The
// errors wrap ErrSpecTooLarge or ErrWorkspaceFull: the request's fault.
func checkSpec(s Spec) error {
	total := len(s.Dir)
	for _, l := range []struct {
		what string
		list []string
	}{{"argv", s.Argv}, {"env", s.Env}} {
		for i, a := range l.list {
			if len(a) > MaxArgBytes {
				return fmt.Errorf("%w: %s[%d] is %d bytes (at most %d)", ErrSpecTooLarge, l.what, i, len(a), MaxArgBytes)
			}
			total += len(a)
		}
	}
	if s.Collect != nil {
		for _, p := range s.Collect.Patterns {
			total += len(p)
		}
	}
	if total > MaxConfigBytes {
		return fmt.Errorf("%w: argv, environment and working directory are %d bytes (at most %d)", ErrSpecTooLarge, total, MaxConfigBytes)
	}
	var size int64
	for _, f := range s.Files {
		size += int64(len(f.Data))
	}
	// Exactly what fits (tmpfs rounds each file up to pages, and counts
	// inodes) is found by runbox-init as it writes them.
	if size > s.Limits.Disk {
		return fmt.Errorf("%w: %d bytes of files, %d bytes of disk", ErrWorkspaceFull, size, s.Limits.Disk)
	}
	return nil
}

func internal(err error) (Result, error) {
	return Result{Status: StatusInternalError, Message: err.Error()}, err
}

// take returns a warm box from the pool, or starts one when the pool is
// empty or off.
func (j *Jail) take() (*box, error) {
	select {
	case b := <-j.pool:
		return b, nil
	default:
		return j.start()
	}
}

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
	reportR *os.File // read by readReports into reports
	reports chan boxinit.Report
	// undead: init was not seen to exit after SIGKILL within the teardown
	// time. Its uid slot then stays claimed, so that no later box shares
	// a host uid with processes that may still run.
	undead   bool
	teardown time.Duration // how long a kill may take (phases.teardown)
}

// warmLimits hold a box until a request sets its own: enough for init.
var warmLimits = cgroup.Limits{MemoryBytes: 64 << 20, Pids: initThreads}

// start starts a box and sends it its Config; it does not wait for it to be
// ready.
func (j *Jail) start() (_ *box, err error) {
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
	if b.collect, err = pipe(true); err != nil {
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
	if err := writeMessage(b.ctrl, j.warmConfig()); err != nil {
		return nil, fmt.Errorf("configure box: %w", err)
	}
	return b, nil
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
	for _, f := range []*os.File{b.stdin, b.stdout, b.stderr, b.ctrl, b.collect} {
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

// run gives a started box its program and waits for the end. cfg is the
// marshalled RunConfig.
//
// Every phase of the box has a deadline that kills it: becoming ready
// (phases.ready), taking its configuration and files and starting the
// program (phases.setup and more for larger files), the program's run (its
// wall-clock and CPU limits), the collection and init's exit after the
// program's end (Collect.MaxTime and phases.tail), and the kill itself
// (phases.teardown). Nothing the box does, or fails to do, holds a run
// past them, and every pipe is drained or closed on every path.
func (b *box) run(ctx context.Context, j *Jail, spec Spec, cfg []byte) (Result, error) {
	var res Result
	lim := spec.Limits
	ph := j.phases
	// Wait until init has built the box: what it used until then is not
	// the program's. A warm box from the pool is ready already.
	readyT := time.NewTimer(ph.ready)
	select {
	case rep, ok := <-b.reports:
		readyT.Stop()
		if !ok || !rep.Ready {
			if rep.Error != "" {
				return res, errors.New("box init: " + rep.Error)
			}
			return res, errors.New("box init ended before it was ready")
		}
	case <-readyT.C:
		return res, fmt.Errorf("box not ready after %v", ph.ready)
	case <-ctx.Done():
		readyT.Stop()
		return res, ctx.Err()
	}
	base, err := b.group.Stats()
	if err != nil {
		return res, err
	}
	if err := b.group.Set(cgroup.Limits{
		MemoryBytes: lim.Memory,
		Pids:        int64(lim.Processes) + initThreads,
		CPUQuota:    lim.CPUs,
	}); err != nil {
		return res, err
	}
	ctrl := b.ctrl
	b.ctrl = nil
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		// A failure here shows as init's own report (it could not read its
		// config or files) or as the setup deadline. The write ends when
		// init has read everything, dies (EPIPE), or ctrl is closed below.
		if _, err := ctrl.Write(frame(cfg)); err == nil {
			_ = writeFiles(ctrl, spec.Files)
		}
		ctrl.Close()
	}()
	stdin := b.stdin
	b.stdin = nil
	if spec.Stdin != nil {
		go func() {
			_, _ = io.Copy(stdin, spec.Stdin)
			stdin.Close()
		}()
	} else {
		stdin.Close()
	}

	overflow := make(chan struct{}, 2)
	out := &capture{limit: lim.Output, overflow: overflow, tee: spec.StdoutTee}
	errOut := &capture{limit: lim.Output, overflow: overflow, tee: spec.StderrTee}
	var readers sync.WaitGroup
	readers.Add(3)
	go func() { defer readers.Done(); out.drain(b.stdout) }()
	go func() { defer readers.Done(); errOut.drain(b.stderr) }()
	var collected []File
	var collectErr error
	collectR := b.collect
	go func() {
		defer readers.Done()
		collected, collectErr = readCollected(collectR, spec.Collect)
		// Closed whatever happened: an init still writing gets EPIPE, and
		// its collection ends there.
		collectR.Close()
	}()

	var (
		final     *boxinit.Report
		exited    bool // final is the program's end
		killed    bool
		why       Status
		message   string
		failure   error // a phase deadline passed: runbox's own failure
		started   time.Time
		usage     cgroup.Stats
		collectOK bool // init reported its collection, not truncated
		gotReport bool // init reported its collection at all
		tailOver  bool // init did not exit in time after the program's end
	)
	// Once the box is killed, init's exit (the report pipe closing) is
	// awaited for the teardown time at most.
	dyingT := time.NewTimer(time.Hour)
	dyingT.Stop()
	defer dyingT.Stop()
	var dying <-chan time.Time
	killBox := func() {
		b.kill()
		if dying == nil {
			dyingT.Reset(b.teardown)
			dying = dyingT.C
		}
	}
	kill := func(s Status, msg string) {
		if !killed && failure == nil {
			killed, why, message = true, s, msg
			killBox()
		}
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	cpuTick := tick.C
	setupFor := ph.setup + time.Duration(filesSize(spec.Files)>>20)*ph.setupPerMiB
	setupT := time.NewTimer(setupFor)
	defer setupT.Stop()
	setup := setupT.C
	var wall, tail <-chan time.Time
loop:
	for {
		select {
		case rep, ok := <-b.reports:
			if !ok {
				break loop
			}
			switch {
			case exited:
				// After the program's end, only the collection reports.
				if rep.Collected {
					gotReport, collectOK = true, !rep.CollectTruncated
				}
			case rep.Started:
				setupT.Stop()
				setup = nil
				started = time.Now()
				t := time.NewTimer(lim.WallTime)
				defer t.Stop()
				wall = t.C
				j.protectInit(b)
			default:
				final = &rep
				setupT.Stop()
				setup = nil
				if rep.Exited {
					exited = true
					wall, cpuTick = nil, nil
					if s, err := b.group.Stats(); err == nil {
						usage = s.Since(base)
					}
					// The collection has its own time, and init a little
					// more to finish and exit.
					d := ph.tail
					if spec.Collect != nil {
						d += collectLimits(*spec.Collect).MaxTime
					}
					t := time.NewTimer(d)
					defer t.Stop()
					tail = t.C
				}
			}
		case <-setup:
			if !killed && failure == nil {
				failure = fmt.Errorf("box did not start its program within %v", setupFor)
				killBox()
			}
		case <-wall:
			kill(StatusTimeLimit, "wall-clock time limit of "+lim.WallTime.String()+" exceeded")
		case <-tail:
			// The program is over and its result known: a collection that
			// does not end in time is cut short, and says so.
			tail = nil
			tailOver = true
			j.log.Warn("box did not exit after its program ended; killed", "box", b.id)
			killBox()
		case <-dying:
			// Killed, and init still reports: stop waiting for it.
			break loop
		case <-overflow:
			kill(StatusOutputLimit, "output limit of "+strconv.FormatInt(lim.Output, 10)+" bytes per stream exceeded")
		case <-ctx.Done():
			kill(StatusInternalError, "cancelled: "+ctx.Err().Error())
		case <-cpuTick:
			s, err := b.group.Stats()
			if err != nil {
				continue
			}
			usage = s.Since(base)
			if usage.CPUTime >= lim.CPUTime {
				kill(StatusTimeLimit, "CPU time limit of "+lim.CPUTime.String()+" exceeded")
			} else if usage.OOMKills > 0 {
				kill(StatusMemoryLimit, "memory limit of "+strconv.FormatInt(lim.Memory, 10)+" bytes exceeded")
			}
		}
	}
	// b.reports is closed, or (when init outlived its kill) destroy closes
	// the report pipe and drains it.
	if !b.killAndWait(b.teardown) { // init is done or dying; make sure
		j.log.Error("box did not die within its teardown time after SIGKILL", "box", b.id, "timeout", b.teardown)
		// Its processes may still hold the write ends: stop reading.
		b.stdout.Close()
		b.stderr.Close()
		collectR.Close()
	}
	// With init gone the kernel has killed and reaped every process of the
	// pid namespace, so every write end of the box's pipes is closed.
	readers.Wait()
	stdin.Close() // a writer blocked on a program that never read
	ctrl.Close()
	<-fed
	if !exited {
		if s, err := b.group.Stats(); err == nil {
			usage = s.Since(base)
		}
	}

	if spec.Collect != nil && exited && !killed && failure == nil {
		if collectErr != nil {
			j.log.Warn("collected files cut short", "box", b.id, "err", collectErr)
		}
		res.Files = collected
		res.FilesTruncated = !collectOK || !gotReport || tailOver || collectErr != nil
	}
	res.Stdout, res.StdoutTruncated = out.buf.Bytes(), out.truncated
	res.Stderr, res.StderrTruncated = errOut.buf.Bytes(), errOut.truncated
	res.CPUTime = usage.CPUTime
	res.Memory = usage.MemoryPeak
	if final != nil && final.WallNanos > 0 {
		res.WallTime = time.Duration(final.WallNanos)
	} else if !started.IsZero() {
		res.WallTime = time.Since(started)
	}
	return classify(ctx, res, lim, usage, final, killed, why, message, failure)
}

func filesSize(files []File) int64 {
	var n int64
	for _, f := range files {
		n += int64(len(f.Data))
	}
	return n
}

// classify decides the status of a finished run.
func classify(ctx context.Context, res Result, lim Limits, usage cgroup.Stats, final *boxinit.Report, killed bool, why Status, message string, failure error) (Result, error) {
	memoryLimit := "memory limit of " + strconv.FormatInt(lim.Memory, 10) + " bytes exceeded"
	switch {
	case killed && why == StatusInternalError:
		return res, ctx.Err()
	case killed:
		res.Status, res.Message = why, message
		res.ExitCode, res.Signal = -1, int(unix.SIGKILL)
		if final != nil && final.Exited {
			// The program ended by itself just as the limit hit.
			res.ExitCode, res.Signal = final.ExitCode, final.Signal
		}
		return res, nil
	case final != nil && final.WorkspaceFull:
		return res, fmt.Errorf("%w: %s", ErrWorkspaceFull, final.Error)
	case usage.OOMKills > 0 && (final == nil || !final.Exited):
		// init died or failed before the program's end in a box whose
		// memory ran out: the box hit its limit, runbox did not fail.
		res.Status, res.Message = StatusMemoryLimit, memoryLimit
		res.ExitCode, res.Signal = -1, int(unix.SIGKILL)
		return res, nil
	case failure != nil:
		return res, failure
	case final == nil:
		return res, errors.New("box init ended without a report")
	case final.Error != "":
		return res, errors.New("box init: " + final.Error)
	case final.ExecError != "":
		res.Status, res.ExitCode = StatusRuntimeError, 127
		res.Message = "cannot execute " + final.ExecError
		return res, nil
	}
	res.ExitCode, res.Signal = final.ExitCode, final.Signal
	switch {
	case usage.OOMKills > 0:
		res.Status = StatusMemoryLimit
		res.Message = memoryLimit
	case res.CPUTime >= lim.CPUTime || final.Signal == int(unix.SIGXCPU):
		res.Status = StatusTimeLimit
		res.Message = "CPU time limit of " + lim.CPUTime.String() + " exceeded"
	case final.Signal != 0:
		res.Status = StatusSignaled
		res.ExitCode = -1
		res.Message = "killed by " + unix.SignalName(syscall.Signal(final.Signal))
		if final.Signal == int(unix.SIGXFSZ) {
			res.Message += " (file size limit of " + strconv.FormatInt(lim.FileSize, 10) + " bytes)"
		}
	case final.ExitCode != 0:
		res.Status = StatusRuntimeError
		res.Message = "exited with code " + strconv.Itoa(final.ExitCode)
	default:
		res.Status = StatusOK
	}
	return res, nil
}

// capture keeps the first limit bytes of a stream. One byte more kills the
// box (through overflow); the rest is read and dropped so that a writer
// never blocks on a full pipe.
type capture struct {
	limit     int64
	buf       bytes.Buffer
	truncated bool
	overflow  chan<- struct{}
	tee       io.Writer // optional live copy of what is kept
}

func (c *capture) keep(b []byte) {
	c.buf.Write(b)
	if c.tee != nil {
		if _, err := c.tee.Write(b); err != nil {
			c.tee = nil // a closed terminal must not stop the capture
		}
	}
}

func (c *capture) drain(r io.Reader) {
	b := make([]byte, 32<<10)
	for {
		n, err := r.Read(b)
		if n > 0 {
			room := c.limit - int64(c.buf.Len())
			if int64(n) > room {
				if room > 0 {
					c.keep(b[:room])
				}
				if !c.truncated {
					c.truncated = true
					c.overflow <- struct{}{}
				}
			} else {
				c.keep(b[:n])
			}
		}
		if err != nil {
			return
		}
	}
}

// collectEntryOverhead bounds the bytes of one collected file in the tar
// stream besides its content: its header block, a PAX extended header
// (one block, and its records: a path of at most boxinit.MaxCollectPath
// bytes, rounded up to whole blocks) and the padding of its content to a
// whole block. init leaves out every file with a longer path.
const collectEntryOverhead = 512 + 512 + (boxinit.MaxCollectPath+512+511)/512*512 + 511

// collectStreamBound is the most a collection stream may take: the content
// bound, every file's overhead, and the two zero blocks that end it.
func collectStreamBound(c Collect) int64 {
	return c.MaxBytes + int64(c.MaxFiles)*collectEntryOverhead + 2*512
}

// readCollected reads the tar stream of collected files and returns the
// whole files it holds, in order. The stream is init's, and init keeps to
// the same bounds; the host still reads at most collectStreamBound bytes
// and refuses an entry beyond the bounds or with a name it would not send,
// so that a stream gone wrong costs neither memory nor time. On an error it
// returns the files read until then and the caller closes the pipe, which
// ends init's writes (EPIPE); the run reports the files as truncated.
func readCollected(r io.Reader, c *Collect) ([]File, error) {
	if c == nil {
		// Nothing asked: init closes the pipe without a byte.
		if n, err := io.Copy(io.Discard, io.LimitReader(r, 1)); err != nil || n > 0 {
			return nil, fmt.Errorf("collection stream without a request (%d bytes, %v)", n, err)
		}
		return nil, nil
	}
	lim := collectLimits(*c)
	tr := tar.NewReader(io.LimitReader(r, collectStreamBound(lim)))
	var files []File
	var total int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return files, err
		}
		switch {
		case h.Typeflag != tar.TypeReg:
			return files, fmt.Errorf("collected entry %.100q of type %q", h.Name, h.Typeflag)
		case !collectedName(h.Name):
			return files, fmt.Errorf("collected entry named %.100q", h.Name)
		case len(files) >= lim.MaxFiles || h.Size < 0 || h.Size > lim.MaxBytes-total:
			return files, fmt.Errorf("collected entry %.100q of %d bytes is beyond the bounds", h.Name, h.Size)
		}
		data := make([]byte, h.Size)
		if _, err := io.ReadFull(tr, data); err != nil {
			return files, err
		}
		total += h.Size
		files = append(files, File{Name: h.Name, Data: data, Mode: uint32(h.Mode) & 0o777})
	}
}

// collectedName accepts what init sends: a clean relative path below the
// workspace, not too long.
func collectedName(name string) bool {
	return name != "" && len(name) <= boxinit.MaxCollectPath && path.Clean(name) == name && !path.IsAbs(name) &&
		name != ".." && !strings.HasPrefix(name, "../") && !strings.ContainsRune(name, 0)
}

func collectLimits(c Collect) Collect {
	if c.MaxFiles <= 0 {
		c.MaxFiles = DefaultCollectFiles
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultCollectBytes
	}
	if c.MaxDepth <= 0 {
		c.MaxDepth = DefaultCollectDepth
	}
	if c.MaxTime <= 0 {
		c.MaxTime = DefaultCollectTime
	}
	return c
}

// warmConfig is what init needs before a request: the same for every box.
func (j *Jail) warmConfig() boxinit.Config {
	binds := make([]boxinit.Bind, len(j.cfg.Binds))
	for i, b := range j.cfg.Binds {
		binds[i] = boxinit.Bind{Src: b.Src, Dst: b.Dst, Optional: b.Optional}
	}
	return boxinit.Config{
		Hostname: j.cfg.Hostname,
		UID:      BoxUID,
		GID:      BoxGID,
		Binds:    binds,
		Devices:  []string{"null", "zero", "full", "random", "urandom"},
		Generated: []boxinit.GenFile{
			{Path: "/etc/passwd", Mode: 0o644, Data: "root:x:0:0:root:/root:/usr/sbin/nologin\n" +
				BoxUser + ":x:1000:1000:runbox:/box:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"},
			{Path: "/etc/group", Mode: 0o644, Data: "root:x:0:\n" + BoxUser + ":x:1000:\nnogroup:x:65534:\n"},
			{Path: "/etc/hosts", Mode: 0o644, Data: "127.0.0.1\tlocalhost " + j.cfg.Hostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n"},
			{Path: "/etc/hostname", Mode: 0o644, Data: j.cfg.Hostname + "\n"},
			{Path: "/etc/nsswitch.conf", Mode: 0o644, Data: "passwd: files\ngroup: files\nhosts: files\n"},
		},
	}
}

// runConfig is what init needs for one run.
func (j *Jail) runConfig(s Spec) boxinit.RunConfig {
	lim := s.Limits
	env := append([]string{}, s.Env...)
	for _, kv := range DefaultEnv {
		key := kv[:strings.IndexByte(kv, '=')+1]
		found := false
		for _, e := range env {
			if strings.HasPrefix(e, key) {
				found = true
				break
			}
		}
		if !found {
			env = append(env, kv)
		}
	}
	dir := s.Dir
	if dir == "" {
		dir = "/box"
	}
	inodes := lim.Disk / 4096
	if inodes < 1024 {
		inodes = 1024
	}
	cpuSecs := uint64(math.Ceil(lim.CPUTime.Seconds())) + 1
	var collect *boxinit.Collect
	if s.Collect != nil {
		c := collectLimits(*s.Collect)
		collect = &boxinit.Collect{Patterns: c.Patterns, MaxFiles: c.MaxFiles, MaxBytes: c.MaxBytes,
			MaxDepth: c.MaxDepth, MaxNanos: int64(c.MaxTime)}
	}
	return boxinit.RunConfig{
		Collect:   collect,
		Argv:      s.Argv,
		Env:       env,
		Dir:       boxinit.Exact{dir},
		Workspace: boxinit.TmpfsSize{Bytes: lim.Disk, Inodes: inodes},
		Tmp:       boxinit.TmpfsSize{Bytes: lim.Disk, Inodes: inodes},
		Shm:       boxinit.TmpfsSize{Bytes: lim.Disk, Inodes: 1024},
		Rlimits: []boxinit.Rlimit{
			{Resource: unix.RLIMIT_FSIZE, Cur: uint64(lim.FileSize), Max: uint64(lim.FileSize)},
			{Resource: unix.RLIMIT_NOFILE, Cur: uint64(lim.OpenFiles), Max: uint64(lim.OpenFiles)},
			{Resource: unix.RLIMIT_CORE, Cur: 0, Max: 0},
			{Resource: unix.RLIMIT_STACK, Cur: uint64(lim.Stack), Max: uint64(lim.Stack)},
			// A backstop for the supervisor's CPU accounting: the kernel
			// itself stops any one process a second past the limit.
			{Resource: unix.RLIMIT_CPU, Cur: cpuSecs, Max: cpuSecs + 1},
			// Counted per host uid, which is this box's alone.
			{Resource: unix.RLIMIT_NPROC, Cur: uint64(lim.Processes), Max: uint64(lim.Processes)},
			// Queued signals and POSIX message-queue bytes are kernel
			// memory counted per user and charged to the owner of the
			// box's user namespace too (its root id). Left at the host's
			// defaults (~96,000 signals, 800 KiB) they are far beyond what
			// a program needs. 1024 signals leave every thread of the
			// largest box (512) two at once (a POSIX timer holds one for
			// life); 256 KiB hold three message queues of the default
			// size (10 messages of 8 KiB) — no toolchain uses any.
			{Resource: unix.RLIMIT_SIGPENDING, Cur: sigPending, Max: sigPending},
			{Resource: unix.RLIMIT_MSGQUEUE, Cur: msgQueueBytes, Max: msgQueueBytes},
		},
		Seccomp: j.filter,
	}
}

// writeMessage sends one length-prefixed JSON message.
func writeMessage(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(frame(b))
	return err
}

// frame prefixes a message with its length, as readMessage in runbox-init
// expects it.
func frame(msg []byte) []byte {
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(msg)))
	return append(n[:], msg...)
}

// writeFiles sends the workspace as a tar stream. Parent directories that
// are not listed are sent before their first file.
func writeFiles(w io.Writer, files []File) error {
	tw := tar.NewWriter(w)
	dirs := map[string]bool{}
	for _, f := range files {
		if f.Dir {
			dirs[strings.TrimSuffix(f.Name, "/")] = true
		}
	}
	for _, f := range files {
		for i := 0; i < len(f.Name); i++ {
			if f.Name[i] != '/' || dirs[f.Name[:i]] {
				continue
			}
			dirs[f.Name[:i]] = true
			if err := tw.WriteHeader(&tar.Header{Name: f.Name[:i], Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
				return err
			}
		}
		h := &tar.Header{Name: f.Name, Mode: int64(f.Mode), Typeflag: tar.TypeReg, Size: int64(len(f.Data))}
		switch {
		case f.Dir:
			h.Typeflag, h.Size = tar.TypeDir, 0
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		case f.Symlink != "":
			h.Typeflag, h.Size, h.Linkname = tar.TypeSymlink, 0, f.Symlink
		case h.Mode == 0:
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}
