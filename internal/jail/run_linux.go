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

// Namespaces every box gets.
const cloneFlags = unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWNET |
	unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWCGROUP

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
	j.seq++
	seq := j.seq
	j.mu.Unlock()
	defer j.active.Done()

	spec.Limits = spec.Limits.WithDefaults(Defaults)
	if err := spec.Limits.Validate(); err != nil {
		return internal(fmt.Errorf("limits: %w", err))
	}
	if len(spec.Argv) == 0 || spec.Argv[0] == "" {
		return internal(errors.New("empty command"))
	}
	r := &run{j: j, spec: spec}
	defer r.cleanup()
	res, err := r.execute(ctx, seq)
	if err != nil {
		j.log.Error("box failed", "box", seq, "err", err)
		res.Status = StatusInternalError
		res.Message = "runbox failed: " + err.Error()
	}
	return res, err
}

func internal(err error) (Result, error) {
	return Result{Status: StatusInternalError, Message: err.Error()}, err
}

// run is the state of one box while it runs.
type run struct {
	j     *Jail
	spec  Spec
	slot  *slot
	group *cgroup.Group
	proc  *os.Process
	files []*os.File // every pipe end still open on our side
}

func (r *run) cleanup() {
	for _, f := range r.files {
		f.Close()
	}
	if r.proc != nil {
		_ = r.proc.Kill()
		_, _ = r.proc.Wait()
	}
	if r.group != nil {
		if err := r.group.Kill(); err != nil {
			r.j.log.Error("kill box cgroup", "err", err)
		}
		if err := r.group.Remove(); err != nil {
			r.j.log.Error("remove box cgroup", "err", err)
		}
	}
	if r.slot != nil {
		r.slot.release()
	}
}

func (r *run) pipe() (rd, wr *os.File, err error) {
	rd, wr, err = os.Pipe()
	if err == nil {
		r.files = append(r.files, rd, wr)
	}
	return rd, wr, err
}

func (r *run) execute(ctx context.Context, seq uint64) (Result, error) {
	var res Result
	lim := r.spec.Limits
	var err error
	if r.slot, err = r.j.acquireSlot(); err != nil {
		return res, err
	}
	r.group, err = r.j.cgroups.New("box-"+strconv.FormatUint(seq, 10), cgroup.Limits{
		MemoryBytes: lim.Memory,
		Pids:        int64(lim.Processes) + initThreads,
		CPUQuota:    lim.CPUs,
	})
	if err != nil {
		return res, err
	}

	stdinR, stdinW, err := r.pipe()
	if err != nil {
		return res, err
	}
	stdoutR, stdoutW, err := r.pipe()
	if err != nil {
		return res, err
	}
	stderrR, stderrW, err := r.pipe()
	if err != nil {
		return res, err
	}
	ctrlR, ctrlW, err := r.pipe()
	if err != nil {
		return res, err
	}
	reportR, reportW, err := r.pipe()
	if err != nil {
		return res, err
	}

	sys := &syscall.SysProcAttr{
		Cloneflags: cloneFlags,
		UidMappings: []syscall.SysProcIDMap{
			{ContainerID: 0, HostID: r.slot.rootID, Size: 1},
			{ContainerID: BoxUID, HostID: r.slot.userID, Size: 1},
		},
		GidMappings: []syscall.SysProcIDMap{
			{ContainerID: 0, HostID: r.slot.rootID, Size: 1},
			{ContainerID: BoxGID, HostID: r.slot.userID, Size: 1},
		},
		// "deny" in /proc/<pid>/setgroups: nothing in the box may ever
		// change its supplementary groups (CVE-2014-8989).
		GidMappingsEnableSetgroups: false,
		// runbox-init runs as root of the box's user namespace, so it keeps
		// its capabilities there across execve; it never has any on the host.
		Credential: &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
		Setsid:     true,
		// If runbox dies, init dies, and with it the whole pid namespace.
		Pdeathsig: syscall.SIGKILL,
	}
	if fd := r.group.FD(); fd >= 0 {
		// cgroup v2: born inside its cgroup (clone3 CLONE_INTO_CGROUP), no
		// migration afterwards.
		sys.UseCgroupFD = true
		sys.CgroupFD = fd
	}
	r.proc, err = os.StartProcess(r.j.initPath, []string{"runbox-init"}, &os.ProcAttr{
		Dir:   "/",
		Env:   []string{},
		Files: []*os.File{stdinR, stdoutW, stderrW, ctrlR, reportW},
		Sys:   sys,
	})
	if err != nil {
		return res, fmt.Errorf("start box: %w", err)
	}
	// The box's ends are the box's now.
	for _, f := range []*os.File{stdinR, stdoutW, stderrW, ctrlR, reportW} {
		f.Close()
	}
	if r.group.FD() < 0 {
		if err := r.group.Enter(r.proc.Pid); err != nil {
			return res, err
		}
	}

	cfg := r.j.boxConfig(r.spec)
	go func() {
		// Errors surface as init's own report (it could not read its config).
		_ = writeControl(ctrlW, cfg, r.spec.Files)
		ctrlW.Close()
	}()
	if r.spec.Stdin != nil {
		go func() {
			_, _ = io.Copy(stdinW, r.spec.Stdin)
			stdinW.Close()
		}()
	} else {
		stdinW.Close()
	}

	overflow := make(chan struct{}, 2)
	out := &capture{limit: lim.Output, overflow: overflow}
	errOut := &capture{limit: lim.Output, overflow: overflow}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { defer readers.Done(); out.drain(stdoutR) }()
	go func() { defer readers.Done(); errOut.drain(stderrR) }()

	reports := make(chan boxinit.Report, 2)
	go func() {
		defer close(reports)
		dec := json.NewDecoder(io.LimitReader(reportR, 1<<16))
		for {
			var rep boxinit.Report
			if dec.Decode(&rep) != nil {
				return
			}
			reports <- rep
		}
	}()

	var (
		final     *boxinit.Report
		killed    bool
		why       Status
		message   string
		started   time.Time
		wall      <-chan time.Time
		lastStats cgroup.Stats
	)
	kill := func(s Status, msg string) {
		if !killed {
			killed, why, message = true, s, msg
			_ = r.proc.Kill()
		}
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
loop:
	for {
		select {
		case rep, ok := <-reports:
			if !ok {
				break loop
			}
			if rep.Started {
				started = time.Now()
				t := time.NewTimer(lim.WallTime)
				defer t.Stop()
				wall = t.C
				continue
			}
			final = &rep
		case <-wall:
			kill(StatusTimeLimit, "wall-clock time limit of "+lim.WallTime.String()+" exceeded")
		case <-overflow:
			kill(StatusOutputLimit, "output limit of "+strconv.FormatInt(lim.Output, 10)+" bytes per stream exceeded")
		case <-ctx.Done():
			kill(StatusInternalError, "cancelled: "+ctx.Err().Error())
		case <-tick.C:
			s, err := r.group.Stats()
			if err != nil {
				continue
			}
			lastStats = s
			if s.CPUTime >= lim.CPUTime {
				kill(StatusTimeLimit, "CPU time limit of "+lim.CPUTime.String()+" exceeded")
			} else if s.OOMKills > 0 {
				kill(StatusMemoryLimit, "memory limit of "+strconv.FormatInt(lim.Memory, 10)+" bytes exceeded")
			}
		}
	}
	_ = r.proc.Kill() // init is done or dying; make sure
	_, _ = r.proc.Wait()
	r.proc = nil
	// With init gone the kernel has killed and reaped every process of the
	// pid namespace, so every write end of the output pipes is closed.
	readers.Wait()
	if s, err := r.group.Stats(); err == nil {
		lastStats = s
	}

	res.Stdout, res.StdoutTruncated = out.buf.Bytes(), out.truncated
	res.Stderr, res.StderrTruncated = errOut.buf.Bytes(), errOut.truncated
	res.CPUTime = lastStats.CPUTime
	res.Memory = lastStats.MemoryPeak
	if final != nil && final.WallNanos > 0 {
		res.WallTime = time.Duration(final.WallNanos)
	} else if !started.IsZero() {
		res.WallTime = time.Since(started)
	}

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
		if why == StatusOutputLimit {
			res.Stdout, res.Stderr = out.head(), errOut.head()
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
	case lastStats.OOMKills > 0:
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
}

func (c *capture) drain(r io.Reader) {
	b := make([]byte, 32<<10)
	for {
		n, err := r.Read(b)
		if n > 0 {
			room := c.limit - int64(c.buf.Len())
			if int64(n) > room {
				if room > 0 {
					c.buf.Write(b[:room])
				}
				if !c.truncated {
					c.truncated = true
					c.overflow <- struct{}{}
				}
			} else {
				c.buf.Write(b[:n])
			}
		}
		if err != nil {
			return
		}
	}
}

func (c *capture) head() []byte { return c.buf.Bytes() }

// boxConfig is the configuration init receives.
func (j *Jail) boxConfig(s Spec) boxinit.Config {
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
	binds := make([]boxinit.Bind, len(j.cfg.Binds))
	for i, b := range j.cfg.Binds {
		binds[i] = boxinit.Bind{Src: b.Src, Dst: b.Dst, Optional: b.Optional}
	}
	inodes := lim.Disk / 4096
	if inodes < 1024 {
		inodes = 1024
	}
	cpuSecs := uint64(math.Ceil(lim.CPUTime.Seconds())) + 1
	return boxinit.Config{
		Argv:     s.Argv,
		Env:      env,
		Dir:      dir,
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

// writeControl sends the length-prefixed config and then the workspace as a
// tar stream.
func writeControl(w io.Writer, cfg boxinit.Config, files []File) error {
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(b)))
	if _, err := w.Write(append(n[:], b...)); err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	for _, f := range files {
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
