package jail

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runbox-dev/runbox/internal/cgroup"
	"github.com/runbox-dev/runbox/internal/initbin"
	"github.com/runbox-dev/runbox/internal/jail/boxinit"
	"github.com/runbox-dev/runbox/internal/seccomp"
)

// phaseTimeouts bound the phases of a box's life that its limits do not.
// Each ends with the box killed; none is reached by a box that behaves.
type phaseTimeouts struct {
	// ready: from a request to init's Ready report (the box is built). A
	// warm box from the pool is ready already.
	ready time.Duration
	// setup, and setupPerMiB of the workspace's files: from sending the
	// RunConfig to the program's start (init takes its configuration and
	// files, and forks the program).
	setup, setupPerMiB time.Duration
	// tail: from the program's end to init's exit, on top of the
	// collection's own MaxTime.
	tail time.Duration
	// teardown: from SIGKILL to init's exit, which the kernel completes
	// only once every process of the box is gone.
	teardown time.Duration
}

var defaultPhases = phaseTimeouts{
	ready:       10 * time.Second,
	setup:       10 * time.Second,
	setupPerMiB: 20 * time.Millisecond, // 50 MiB/s: a pipe moves 20 times that
	tail:        2 * time.Second,
	teardown:    10 * time.Second,
}

// ErrNeedRoot means the jail was started without the privileges it needs to
// map host uids into new user namespaces and create cgroups.
var ErrNeedRoot = errors.New("runbox needs to run as root (it maps box uids and creates cgroups)")

// Jail runs boxes. It is safe for concurrent use.
type Jail struct {
	cfg      Config
	log      *slog.Logger
	initMem  *os.File // sealed memfd holding runbox-init
	initFD   int      // its descriptor
	initPath string   // /proc/self/fd/<initFD>
	filter   []byte   // compiled seccomp program
	layout   cgroup.Layout
	cgroups  *cgroup.Manager

	// The spawner: runbox-init in its spawner role, which clones every box
	// (see boxinit.SpawnerArg for why). spawnMu serialises its exchanges.
	spawner   *os.Process
	spawnMu   sync.Mutex
	spawnSock int

	// pool holds warm boxes when Config.Pool > 0; fillers keep it full.
	pool    chan *box
	refill  chan struct{} // runs that took a pool box and ended (ranOut)
	stop    chan struct{}
	fillers sync.WaitGroup

	// phases bound the parts of a box's life that its limits do not.
	phases phaseTimeouts
	// oomUnprotected: runbox-init's oom_score_adj cannot be lowered (no
	// CAP_SYS_RESOURCE); not tried again.
	oomUnprotected atomic.Bool

	// stageMem: runbox-init again, executable but not readable by box ids,
	// for session commands' first stages (see boxinit's fork); made at the
	// first session.
	stageOnce sync.Once
	stageMem  *os.File
	stageErr  error

	mu     sync.Mutex
	closed bool
	active sync.WaitGroup
	// retiring: boxes whose run is over, being destroyed (retire).
	retiring sync.WaitGroup
	seq      uint64
	sessions map[*Session]struct{} // open sessions, closed by Close
}

// New prepares a jail: it checks privileges, loads runbox-init into a sealed
// memory file, compiles the seccomp policy, sweeps cgroups a crashed runbox
// left behind and creates its own parent cgroup.
func New(cfg Config) (*Jail, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("jail config: %w", err)
	}
	if os.Geteuid() != 0 {
		return nil, ErrNeedRoot
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Boxes inherit the supervisor's supplementary groups, and setgroups is
	// denied inside them, so they could never shed them: a box would keep
	// host gid 0 (shown as 65534 inside, but honoured by every permission
	// check on the read-only binds). Drop them once, here.
	if gs, _ := unix.Getgroups(); len(gs) > 0 {
		if err := unix.Setgroups(nil); err != nil {
			return nil, fmt.Errorf("drop supplementary groups: %w", err)
		}
	}
	prog, err := seccomp.Build(seccomp.Default())
	if err != nil {
		return nil, err
	}
	j := &Jail{cfg: cfg, log: log, filter: prog.Bytes(), initFD: -1, spawnSock: -1, phases: defaultPhases}
	if err := j.loadInit(); err != nil {
		return nil, err
	}
	if err := j.startSpawner(); err != nil {
		j.Close()
		return nil, err
	}
	j.layout, err = cgroup.Discover()
	if err != nil {
		j.Close()
		return nil, err
	}
	if err := cgroup.Sweep(j.layout, cfg.CgroupPrefix, processAlive); err != nil {
		log.Warn("sweep stale cgroups", "err", err)
	}
	// <prefix><pid>-<n>: one parent per jail, so that two jails in one
	// process never remove each other's groups, and the pid tells a later
	// sweep whether the owner is still alive.
	name := cfg.CgroupPrefix + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(uint64(rand.Uint32()), 36)
	j.cgroups, err = cgroup.NewManager(j.layout, name)
	if err != nil {
		j.Close()
		return nil, err
	}
	j.pool = make(chan *box, cfg.Pool)
	j.refill = make(chan struct{}, cfg.Pool)
	j.stop = make(chan struct{})
	for range cfg.Pool {
		j.fillers.Add(1)
		go j.fill()
	}
	return j, nil
}

// fill keeps the pool topped up with warm boxes: everything that does not
// depend on a request — namespaces, the cgroup move (which on cgroup v1
// waits for an RCU grace period when migrations are rare), the mounts and
// pivot_root — happens here, off the request path.
func (j *Jail) fill() {
	defer j.fillers.Done()
	for {
		b, err := j.start()
		if err != nil {
			j.log.Error("warm box", "err", err)
			select {
			case <-j.stop:
				return
			case <-time.After(time.Second):
				continue
			}
		}
		b.setNice(warmNice)
		select {
		case j.pool <- b:
		case <-j.stop:
			b.destroy(j.log)
			return
		}
		// The next box once a run has ended (or after refillDelay): a
		// box built while a request's box is set up and its program runs
		// takes CPU the request waits for (measured: 1 to 1.3 ms more for
		// a request on an idle machine, even with the warm box niced).
		select {
		case <-j.refill:
		case <-time.After(refillDelay):
		case <-j.stop:
			return
		}
	}
}

// refillDelay bounds how long a filler waits for a run to end before it
// builds its next box anyway (a long program must not leave the pool
// empty).
const refillDelay = 50 * time.Millisecond

// ranOut tells a filler that a run that took a pool box has ended.
func (j *Jail) ranOut() {
	select {
	case j.refill <- struct{}{}:
	default:
	}
}

func processAlive(pid int) bool {
	return unix.Kill(pid, 0) != unix.ESRCH
}

// loadInit copies runbox-init into a sealed memfd. Boxes execute it from
// there: nothing inside a box can write to it (the seals forbid every
// write, even by root), and the runbox binary on disk is never executed in
// a box at all — the defence against runc CVE-2019-5736.
func (j *Jail) loadInit() error {
	var src io.Reader
	if j.cfg.InitPath != "" {
		f, err := os.Open(j.cfg.InitPath)
		if err != nil {
			return fmt.Errorf("read init: %w", err)
		}
		defer f.Close()
		src = f
	} else {
		var ok bool
		if src, ok = initbin.Open(); !ok {
			return errors.New("this runbox was built without runbox-init: build it with `make` (go generate ./internal/initbin)")
		}
	}
	fd, err := unix.MemfdCreate("runbox-init", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) { // kernels before 6.3 know no MFD_EXEC
		fd, err = unix.MemfdCreate("runbox-init", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return fmt.Errorf("memfd for init: %w", err)
	}
	mem := os.NewFile(uintptr(fd), "runbox-init")
	if _, err := io.Copy(mem, src); err != nil {
		mem.Close()
		return fmt.Errorf("write init: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		mem.Close()
		return fmt.Errorf("seal init: %w", err)
	}
	j.initMem = mem
	j.initFD = fd
	j.initPath = "/proc/self/fd/" + strconv.Itoa(fd)
	return nil
}

// stageBinary returns the sealed memfd that session commands' first stages
// execute: runbox-init again, mode 0711. A process that executes a file
// it cannot read is non-dumpable from its first instruction, with its
// /proc entries owned by host root (would_dump in fs/exec.c): a first
// stage waits as the box's user, and a command of the same uid must not
// be able to open its memory or descriptors meanwhile. The memfd boxes run
// init from stays readable: init opens its own /proc entries.
func (j *Jail) stageBinary() (*os.File, error) {
	j.stageOnce.Do(func() {
		fd, err := unix.MemfdCreate("runbox-init", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
		if errors.Is(err, unix.EINVAL) {
			fd, err = unix.MemfdCreate("runbox-init", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		}
		if err != nil {
			j.stageErr = fmt.Errorf("memfd for first stages: %w", err)
			return
		}
		mem := os.NewFile(uintptr(fd), "runbox-init-stage")
		st, err := j.initMem.Stat()
		if err == nil {
			_, err = io.Copy(mem, io.NewSectionReader(j.initMem, 0, st.Size()))
		}
		if err == nil {
			err = unix.Fchmod(fd, 0o711)
		}
		if err == nil {
			_, err = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE)
		}
		if err != nil {
			mem.Close()
			j.stageErr = fmt.Errorf("first-stage binary: %w", err)
			return
		}
		j.stageMem = mem
	})
	return j.stageMem, j.stageErr
}

// startSpawner starts runbox-init in its spawner role, connected by a
// SOCK_SEQPACKET socket pair.
func (j *Jail) startSpawner() error {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("spawner socket: %w", err)
	}
	theirs := os.NewFile(uintptr(pair[1]), "spawner")
	defer theirs.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		unix.Close(pair[0])
		return err
	}
	defer devnull.Close()
	j.spawner, err = os.StartProcess(j.initPath, []string{"runbox-init", boxinit.SpawnerArg}, &os.ProcAttr{
		Dir:   "/",
		Env:   boxinit.InitEnv,
		Files: []*os.File{devnull, devnull, devnull, theirs},
		// It dies with us, and every box with it.
		Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL,
			// A mount namespace of its own, for the boxes' device nodes
			// (boxinit.DeviceRoot).
			Cloneflags: syscall.CLONE_NEWNS},
	})
	if err != nil {
		unix.Close(pair[0])
		return fmt.Errorf("start spawner: %w", err)
	}
	j.spawnSock = pair[0]
	return nil
}

// spawn asks the spawner for a box with the descriptors fds (which the
// caller keeps open until spawn returns) and returns its init's pid and a
// pidfd for it.
func (j *Jail) spawn(req boxinit.SpawnRequest, fds []int) (int, int, error) {
	msg, err := json.Marshal(req)
	if err != nil {
		return 0, -1, err
	}
	j.spawnMu.Lock()
	defer j.spawnMu.Unlock()
	if err := unix.Sendmsg(j.spawnSock, msg, unix.UnixRights(fds...), nil, 0); err != nil {
		return 0, -1, fmt.Errorf("spawner: %w", err)
	}
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	var n, oobn int
	for {
		n, oobn, _, _, err = unix.Recvmsg(j.spawnSock, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil || n == 0 {
		return 0, -1, fmt.Errorf("spawner gone: %v", err)
	}
	var pidfd = -1
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, m := range msgs {
			if r, err := unix.ParseUnixRights(&m); err == nil && len(r) > 0 {
				pidfd = r[0]
				for _, extra := range r[1:] {
					unix.Close(extra)
				}
			}
		}
	}
	var reply boxinit.SpawnReply
	if err := json.Unmarshal(buf[:n], &reply); err != nil || reply.Error != "" || pidfd < 0 || reply.Pid <= 0 {
		if pidfd >= 0 {
			unix.Close(pidfd)
		}
		if reply.Error != "" {
			return 0, -1, errors.New(reply.Error)
		}
		return 0, -1, fmt.Errorf("spawner: bad reply %q", buf[:n])
	}
	return reply.Pid, pidfd, nil
}

// CgroupVersion reports which cgroup layout boxes use ("v1" or "v2").
func (j *Jail) CgroupVersion() string { return j.layout.Version.String() }

// Close closes open sessions, waits for running boxes to end and removes the
// jail's cgroup.
func (j *Jail) Close() error {
	j.mu.Lock()
	j.closed = true
	open := make([]*Session, 0, len(j.sessions))
	for s := range j.sessions {
		open = append(open, s)
	}
	j.mu.Unlock()
	for _, s := range open {
		s.Close()
	}
	if j.stop != nil {
		close(j.stop)
		j.fillers.Wait()
		close(j.pool)
		for b := range j.pool {
			b.destroy(j.log)
		}
		j.stop = nil
	}
	j.active.Wait()
	j.retiring.Wait()
	if j.spawnSock >= 0 {
		unix.Close(j.spawnSock) // the spawner exits when its socket closes
		j.spawnSock = -1
	}
	if j.spawner != nil {
		_, _ = j.spawner.Wait()
		j.spawner = nil
	}
	var err error
	if j.cgroups != nil {
		err = j.cgroups.Close()
		j.cgroups = nil
	}
	if j.stageMem != nil {
		j.stageMem.Close()
		j.stageMem = nil
	}
	if j.initMem != nil {
		j.initMem.Close()
		j.initMem = nil
		j.initFD = -1
	}
	return err
}
