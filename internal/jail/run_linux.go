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
	"math"
	"os"
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

// DefaultEnv is added to a run's environment for keys it does not set.
var DefaultEnv = []string{
	"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
	"HOME=/box",
	"LANG=C.UTF-8",
	"TMPDIR=/tmp",
}

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
	b, err := j.take()
	if err != nil {
		j.log.Error("box failed to start", "err", err)
		return internal(err)
	}
	defer b.destroy(j.log)
	res, err := b.run(ctx, j, spec)
	if err != nil {
		j.log.Error("box failed", "box", b.id, "err", err)
		res.Status = StatusInternalError
		res.Message = "runbox failed: " + err.Error()
	}
	return res, err
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
	reports chan boxinit.Report
}

// warmLimits hold a box until a request sets its own: enough for init.
var warmLimits = cgroup.Limits{MemoryBytes: 64 << 20, Pids: initThreads}

// start starts a box and sends it its Config; it does not wait for it to be
// ready.
func (j *Jail) start() (_ *box, err error) {
	j.mu.Lock()
	j.seq++
	b := &box{id: j.seq, pidfd: -1}
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

// killAndWait kills init and waits until it has exited. Its exit completes
// only after the kernel has killed every other process of its pid
// namespace, so afterwards nothing of the box runs and every pipe end the
// box held is closed.
func (b *box) killAndWait() {
	if b.pidfd < 0 {
		return
	}
	b.kill()
	fds := []unix.PollFd{{Fd: int32(b.pidfd), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); err != unix.EINTR {
			break
		}
	}
	unix.Close(b.pidfd)
	b.pidfd = -1
}

// destroy kills whatever is left of the box and releases everything it
// held. It is safe on a partly started box.
func (b *box) destroy(log interface{ Error(string, ...any) }) {
	for _, f := range []*os.File{b.stdin, b.stdout, b.stderr, b.ctrl, b.collect} {
		if f != nil {
			f.Close()
		}
	}
	b.killAndWait()
	if b.reports != nil {
		for range b.reports { // drained: the reader ends once init is gone
		}
		b.reports = nil
	}
	if b.group != nil {
		if err := b.group.Kill(); err != nil {
			log.Error("kill box cgroup", "err", err)
		}
		if err := b.group.Remove(); err != nil {
			log.Error("remove box cgroup", "err", err)
		}
		b.group = nil
	}
	if b.slot != nil {
		b.slot.release()
		b.slot = nil
	}
}

// run gives a started box its program and waits for the end.
func (b *box) run(ctx context.Context, j *Jail, spec Spec) (Result, error) {
	var res Result
	lim := spec.Limits
	// Wait until init has built the box: what it used until then is not
	// the program's.
	select {
	case rep, ok := <-b.reports:
		if !ok || !rep.Ready {
			if rep.Error != "" {
				return res, errors.New("box init: " + rep.Error)
			}
			return res, errors.New("box init ended before it was ready")
		}
	case <-ctx.Done():
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
	go func() {
		// A failure here surfaces as init's own report (it could not read
		// its config or files).
		if writeMessage(ctrl, j.runConfig(spec)) == nil {
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
	go func() {
		defer readers.Done()
		collected, collectErr = readCollected(b.collect, spec.Collect)
	}()

	var (
		final   *boxinit.Report
		killed  bool
		why     Status
		message string
		started time.Time
		wall    <-chan time.Time
		usage   cgroup.Stats
	)
	kill := func(s Status, msg string) {
		if !killed {
			killed, why, message = true, s, msg
			b.kill()
		}
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	cpuTick := tick.C
	filesTruncated := false
loop:
	for {
		select {
		case rep, ok := <-b.reports:
			if !ok {
				break loop
			}
			switch {
			case rep.Started:
				started = time.Now()
				t := time.NewTimer(lim.WallTime)
				defer t.Stop()
				wall = t.C
			case rep.Collected:
				filesTruncated = rep.CollectTruncated
			default:
				final = &rep
				if rep.Exited {
					// The program is over: no limit applies to the
					// collection that may follow.
					wall, cpuTick = nil, nil
					if s, err := b.group.Stats(); err == nil {
						usage = s.Since(base)
					}
				}
			}
		case <-wall:
			kill(StatusTimeLimit, "wall-clock time limit of "+lim.WallTime.String()+" exceeded")
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
	b.reports = nil
	b.killAndWait() // init is done or dying; make sure
	// With init gone the kernel has killed and reaped every process of the
	// pid namespace, so every write end of the output pipes is closed.
	readers.Wait()
	if final == nil || !final.Exited {
		if s, err := b.group.Stats(); err == nil {
			usage = s.Since(base)
		}
	}

	if collectErr != nil && !killed {
		return res, fmt.Errorf("collected files: %w", collectErr)
	}
	res.Files, res.FilesTruncated = collected, filesTruncated
	res.Stdout, res.StdoutTruncated = out.buf.Bytes(), out.truncated
	res.Stderr, res.StderrTruncated = errOut.buf.Bytes(), errOut.truncated
	res.CPUTime = usage.CPUTime
	res.Memory = usage.MemoryPeak
	if final != nil && final.WallNanos > 0 {
		res.WallTime = time.Duration(final.WallNanos)
	} else if !started.IsZero() {
		res.WallTime = time.Since(started)
	}
	return classify(ctx, res, lim, usage, final, killed, why, message)
}

// classify decides the status of a finished run.
func classify(ctx context.Context, res Result, lim Limits, usage cgroup.Stats, final *boxinit.Report, killed bool, why Status, message string) (Result, error) {
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
		res.Message = "memory limit of " + strconv.FormatInt(lim.Memory, 10) + " bytes exceeded"
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

// readCollected reads the tar stream of collected files, holding init to
// the bounds it was given (a stream beyond them is an error: init is ours,
// but the bound is cheap to keep).
func readCollected(r io.Reader, c *Collect) ([]File, error) {
	if c == nil {
		_, err := io.Copy(io.Discard, io.LimitReader(r, 1))
		return nil, err
	}
	lim := collectLimits(*c)
	tr := tar.NewReader(io.LimitReader(r, lim.MaxBytes+int64(lim.MaxFiles+2)*2048))
	var files []File
	var total int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			_, _ = io.Copy(io.Discard, r) // let init finish writing
			return files, err
		}
		if len(files) >= lim.MaxFiles || total+h.Size > lim.MaxBytes || h.Typeflag != tar.TypeReg {
			_, _ = io.Copy(io.Discard, r)
			return files, errors.New("stream exceeds its bounds")
		}
		data, err := io.ReadAll(io.LimitReader(tr, h.Size))
		if err != nil {
			return files, err
		}
		total += int64(len(data))
		files = append(files, File{Name: h.Name, Data: data, Mode: uint32(h.Mode) & 0o777})
	}
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
		Dir:       dir,
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
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(b)))
	_, err = w.Write(append(n[:], b...))
	return err
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
