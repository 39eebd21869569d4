package jail

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runbox-dev/runbox/internal/cgroup"
	"github.com/runbox-dev/runbox/internal/initbin"
	"github.com/runbox-dev/runbox/internal/seccomp"
)

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

	// pool holds warm boxes when Config.Pool > 0; fillers keep it full.
	pool    chan *box
	stop    chan struct{}
	fillers sync.WaitGroup

	mu     sync.Mutex
	closed bool
	active sync.WaitGroup
	seq    uint64
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
	j := &Jail{cfg: cfg, log: log, filter: prog.Bytes(), initFD: -1}
	if err := j.loadInit(); err != nil {
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
	j.cgroups, err = cgroup.NewManager(j.layout, cfg.CgroupPrefix+strconv.Itoa(os.Getpid()))
	if err != nil {
		j.Close()
		return nil, err
	}
	j.pool = make(chan *box, cfg.Pool)
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
		select {
		case j.pool <- b:
		case <-j.stop:
			b.destroy(j.log)
			return
		}
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

// CgroupVersion reports which cgroup layout boxes use.
func (j *Jail) CgroupVersion() cgroup.Version { return j.layout.Version }

// Close waits for running boxes to end and removes the jail's cgroup.
func (j *Jail) Close() error {
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
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
	var err error
	if j.cgroups != nil {
		err = j.cgroups.Close()
		j.cgroups = nil
	}
	if j.initMem != nil {
		j.initMem.Close()
		j.initMem = nil
		j.initFD = -1
	}
	return err
}
