package jail

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
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
	memLockBytes  = 64 << 10
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
	if spec.Control != nil {
		if err := spec.Control.claim(); err != nil {
			return internal(err)
		}
		defer spec.Control.end()
	}
	rc := j.runConfig(spec)
	cfg, err := rc.MarshalBinary()
	if err != nil {
		return internal(err)
	}
	if len(cfg) > boxinit.MaxConfig {
		return internal(fmt.Errorf("%w: the run's configuration is %d bytes as runbox-init reads it (at most %d)", ErrSpecTooLarge, len(cfg), boxinit.MaxConfig))
	}
	b, pooled, err := j.take(spec.Root)
	if err != nil {
		j.log.Error("box failed to start", "err", err)
		return internal(err)
	}
	if pooled {
		defer j.ranOut()
	}
	defer j.retire(b)
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
// empty or off or the box is to be on its own root.
func (j *Jail) take(root string) (_ *box, pooled bool, _ error) {
	if root != "" {
		b, err := j.startBox(false, root)
		return b, false, err
	}
	select {
	case b := <-j.pool:
		b.setNice(0)
		return b, true, nil
	default:
		b, err := j.start()
		return b, false, err
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
	if err := b.group.Set(boxLimits(lim)); err != nil {
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

	var readers sync.WaitGroup
	// The live copies of the output wait for the Started report: a client
	// that has seen the program's output can signal it (its Control has
	// begun). Both travel on pipes of their own, so the output may come
	// first. The gate opens at the report or when the loop below ends.
	stdoutTee, stderrTee, openGate := gateOutputs(spec.StdoutTee, spec.StderrTee)
	defer openGate()
	outs := captureOutputs(lim.Output, stdoutTee, stderrTee, b.stdout, b.stderr, &readers)
	readers.Add(1) // the collection, below
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
				// After the program's end, only the collection reports,
				// and it is init's last word: the result is complete.
				if rep.Collected {
					gotReport, collectOK = true, !rep.CollectTruncated
					break loop
				}
			case rep.Started:
				setupT.Stop()
				setup = nil
				started = time.Now()
				t := time.NewTimer(lim.WallTime)
				defer t.Stop()
				wall = t.C
				j.protectInit(b)
				if spec.Control != nil {
					spec.Control.begin(runHandle{b})
				}
				openGate()
			default:
				final = &rep
				setupT.Stop()
				setup = nil
				if rep.Exited {
					if spec.Control != nil {
						spec.Control.end()
					}
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
					if spec.Collect == nil {
						break loop // init's last word
					}
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
		case <-outs.overflow:
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
	openGate()
	// No signal reaches the box from here on.
	if spec.Control != nil {
		spec.Control.end()
	}
	// A run that ended as it should — init reported the program's end and
	// then, if asked, the collection — has nothing of the box left but
	// init, which killed and reaped every other process of the box before
	// it reported the end. init is killed now, and its exit (the Go
	// runtime's threads and memory, and the kernel's teardown of the box's
	// mounts and namespaces: several ms, RCU grace periods among them) is
	// left to retire, after the result. Any other end waits for init's
	// exit here, which completes only once the kernel has killed every
	// process of the pid namespace.
	if exited && !killed && failure == nil && !tailOver {
		b.kill()
	} else if !b.killAndWait(b.teardown) { // init is done or dying; make sure
		j.log.Error("box did not die within its teardown time after SIGKILL", "box", b.id, "timeout", b.teardown)
		// Its processes may still hold the write ends: stop reading.
		b.stdout.Close()
		b.stderr.Close()
		collectR.Close()
	}
	// Every process of the pid namespace is gone (reaped by init, or
	// killed by the kernel with init), so every write end of the box's
	// pipes is closed or about to be.
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
	outs.into(&res)
	res.CPUTime = usage.CPUTime
	res.Memory = usage.MemoryPeak
	if final != nil && final.WallNanos > 0 {
		res.WallTime = time.Duration(final.WallNanos)
	} else if !started.IsZero() {
		res.WallTime = time.Since(started)
	}
	return classify(ctx, res, lim, usage, final, killed, why, message, failure)
}

// gateOutputs holds the writes to stdout and stderr (nil stays nil) until
// open is called; open may be called more than once.
func gateOutputs(stdout, stderr io.Writer) (_, _ io.Writer, open func()) {
	began := make(chan struct{})
	return gated(stdout, began), gated(stderr, began), sync.OnceFunc(func() { close(began) })
}

// gated is w, its writes held until open is closed; nil stays nil.
func gated(w io.Writer, open <-chan struct{}) io.Writer {
	if w == nil {
		return nil
	}
	return gate{w, open}
}

type gate struct {
	w    io.Writer
	open <-chan struct{}
}

func (g gate) Write(p []byte) (int, error) {
	<-g.open
	return g.w.Write(p)
}

// retire destroys a box whose run is over, in the background: what is left
// is init's exit (the kernel's teardown of the box's mounts and namespaces;
// overlayfs waits for an expedited RCU grace period for each of its
// superblocks) and the release of the box's cgroup and uid slot. The
// result does not wait for it; Close does.
func (j *Jail) retire(b *box) {
	j.retiring.Add(1)
	go func() {
		defer j.retiring.Done()
		b.destroy(j.log)
	}()
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
