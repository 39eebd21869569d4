package boxinit

import (
	"archive/tar"
	"encoding"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// devDir is the directory of the box's own device nodes, which the spawner
// names as init's first argument (see makeDevices).
func devDir() string {
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], DeviceRoot+"/") && !strings.Contains(os.Args[1][len(DeviceRoot)+1:], "/") {
		return os.Args[1]
	}
	return "" // then the device sources are not found, and init reports it
}

// Main is the whole life of init. It never returns.
func Main() {
	// The namespace and credential state below belongs to the process, but
	// prctl flags, credentials and the seccomp filter are per thread until
	// synced; keep all of it on one thread (the program is forked from it
	// too).
	runtime.LockOSThread()
	if len(os.Args) > 1 && os.Args[1] == SpawnerArg {
		spawnerMain()
		return
	}
	if len(os.Args) == 2 && os.Args[1] == ExecArg {
		execShim() // never returns
	}

	// Non-dumpable first: the box's own processes must never be able to
	// open /proc/1/mem, /proc/1/exe or /proc/1/fd of this process (runc
	// CVE-2019-5736 overwrote the host binary through /proc/self/exe).
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	// Nothing inherited from the supervisor may reach the program: mark
	// every descriptor above stdio close-on-exec (runc CVE-2024-21626 leaked
	// a host directory descriptor into the container).
	_ = unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	// Every program starts with every signal at its default action. The
	// spawner ignores SIGINT and SIGHUP (and whatever started the
	// supervisor may have too, nohup or a shell's background job); an
	// ignored signal stays ignored across fork and exec, and Go keeps
	// those two ignored when it finds them so. A program would then shrug
	// off ^C on its terminal and a session's Signal(SIGINT). Caught here,
	// they are reset to the default in every child (Go's fork resets the
	// signals it handles, as execve does); nobody reads the channel, so
	// init itself still ignores them.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGINT, syscall.SIGHUP)
	// Signals Go neither handles nor resets (32 and 33, which glibc uses
	// for its threads) may come ignored too, from a cgo parent: they are
	// set back to the default here, in init, where nothing uses them.
	unignoreSignals()

	rep := &reporter{fd: ReportFD}
	code, err := run(rep)
	if err != nil {
		rep.fail(err)
		os.Exit(1)
	}
	os.Exit(code)
}

// maxReportText bounds the text of an error report: the supervisor bounds
// the report lines it reads, and error texts carry names from the request
// (a 70 KB command name once made a report line the supervisor dropped).
const maxReportText = 1024

// reporter writes Report lines, one JSON object each, on the report pipe.
// Its descriptor may move (see relocate).
type reporter struct{ fd int }

func (r *reporter) send(rep Report) error {
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	return writeAll(r.fd, append(b, '\n'))
}

// fail reports the error that ends init.
func (r *reporter) fail(err error) {
	rep := Report{Error: bounded(err.Error())}
	var ee *execError
	if errors.As(err, &ee) {
		rep = Report{ExecError: bounded(ee.Error())}
	}
	var wf *workspaceFullError
	rep.WorkspaceFull = errors.As(err, &wf)
	_ = r.send(rep)
}

func bounded(s string) string {
	if len(s) <= maxReportText {
		return s
	}
	return s[:maxReportText] + "…"
}

// shortName is a name from the request as an error text shows it: whole
// when it is short and printable, otherwise quoted and cut.
func shortName(s string) string {
	const most = 256
	if len(s) <= most && strconv.CanBackquote(s) {
		return s
	}
	if len(s) <= most {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:most]) + "… (" + strconv.Itoa(len(s)) + " bytes)"
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

type execError struct{ err error }

func (e *execError) Error() string { return e.err.Error() }

// workspaceFullError: the workspace's initial files did not fit.
type workspaceFullError struct{ err error }

func (e *workspaceFullError) Error() string { return e.err.Error() }
func (e *workspaceFullError) Unwrap() error { return e.err }

// readMessage reads one length-prefixed message (see wire.go).
func readMessage(r io.Reader, v encoding.BinaryUnmarshaler) error {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return fmt.Errorf("read config length: %w", err)
	}
	size := binary.LittleEndian.Uint32(n[:])
	if size > MaxConfig {
		return fmt.Errorf("config of %d bytes is too large", size)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	if err := v.UnmarshalBinary(b); err != nil {
		return fmt.Errorf("decode config: %w", err)
	}
	return nil
}

func run(rep *reporter) (int, error) {
	ctrl := os.NewFile(ControlFD, "control")
	var cfg Config
	if err := readMessage(ctrl, &cfg); err != nil {
		return 0, err
	}
	if cfg.UID == 0 || cfg.GID == 0 {
		return 0, errors.New("config: the program must not run as root")
	}
	// The box's cgroup namespace is made now, not at clone: on cgroup v1
	// the supervisor moves init into its cgroup after the clone (and sends
	// the Config only then), and a namespace made before would be rooted
	// at the supervisor's cgroup, so that /proc/self/cgroup would show the
	// host's path to the box's (runbox-<host pid>-…/box-N). A namespace is
	// rooted where its creator is when it is made.
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return 0, fmt.Errorf("cgroup namespace: %w", err)
	}
	// Everything that does not depend on the request.
	if err := buildRoot(&cfg, devDir()); err != nil {
		return 0, err
	}
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		return 0, fmt.Errorf("sethostname: %w", err)
	}
	if err := loopbackUp(); err != nil {
		return 0, err
	}
	// The root is built: the program, a session's commands and every
	// thread of init's get the usual timer slack back (see boxSlack).
	// Here, not on the request's path.
	if err := programTimerSlack(); err != nil {
		return 0, err
	}
	if err := rep.send(Report{Ready: true}); err != nil {
		return 0, err
	}

	// Then wait, maybe for long, until a request takes this box.
	var rc RunConfig
	if err := readMessage(ctrl, &rc); err != nil {
		return 0, err
	}
	if (len(rc.Argv) == 0) != rc.Session || len(rc.Dir) != 1 {
		return 0, errors.New("config: argv (only a session has none) or working directory missing")
	}
	for _, m := range []struct {
		dir  string
		size TmpfsSize
	}{{"/box", rc.Workspace}, {"/tmp", rc.Tmp}, {"/dev/shm", rc.Shm}} {
		if err := resizeTmpfs(m.dir, m.size); err != nil {
			return 0, err
		}
	}
	if err := extract(tar.NewReader(ctrl), "/box", cfg.UID, cfg.GID, rc.Workspace.Bytes); err != nil {
		if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
			err = &workspaceFullError{err}
		}
		return 0, fmt.Errorf("workspace files: %w", err)
	}
	ctrl.Close()
	if rc.Session {
		return serveSession(rep, &cfg, &rc)
	}
	// The workspace as it is now, before the program can rename or replace
	// anything in it: collection walks from this descriptor.
	boxfd, err := unix.Open("/box", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return 0, fmt.Errorf("open workspace: %w", err)
	}
	collectFD := CollectFD
	// init applies the program's rlimits to itself before it forks the
	// program. RLIMIT_NOFILE bounds the numbers of new descriptors, not
	// those already open: with a limit as low as 8, init's own descriptors
	// (and the Go runtime's) left no number free for the fork's pipe or
	// the collection's walk. Move init's own above the limit.
	if n := nofile(rc.Rlimits); n < relocateBelow {
		boxfd = relocate(boxfd, n)
		rep.fd = relocate(rep.fd, n)
		collectFD = relocate(collectFD, n)
	}
	if err := lockDown(&rc); err != nil {
		return 0, err
	}
	return supervise(rep, &cfg, &rc, boxfd, collectFD)
}

// programTimerSlack sets programSlack on this thread (the program and
// session commands are forked from it and inherit it) and on every other
// thread of init's: init's own waits once the program runs — a session's
// requests above all — would otherwise be deferred by up to boxSlack
// (measured: a session command 0.8 to 1.3 ms slower). Other threads are
// reached through /proc (init is root in the box's user namespace, with
// CAP_SYS_NICE there); a thread started meanwhile is found by the next
// pass. (TestInitTimerSlack reads them from the host.)
func programTimerSlack() error {
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, programSlack, 0, 0, 0); err != nil {
		return fmt.Errorf("timer slack: %w", err)
	}
	done := map[string]bool{}
	for pass := 0; pass < 8; pass++ {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("timer slack: %w", err)
		}
		fresh := false
		for _, t := range tasks {
			if done[t.Name()] {
				continue
			}
			fresh = true
			done[t.Name()] = true
			// /proc/<tid> (unlisted, but there) has the file; the task
			// directories do not.
			err := os.WriteFile("/proc/"+t.Name()+"/timerslack_ns", []byte(strconv.Itoa(programSlack)), 0)
			if err != nil && !errors.Is(err, fs.ErrNotExist) { // a thread that has just exited
				return fmt.Errorf("timer slack of thread %s: %w", t.Name(), err)
			}
		}
		if !fresh {
			return nil
		}
	}
	return nil
}

// relocateBelow: with a descriptor limit at least this high, init's few
// descriptors, the fork's pipe and a collection walk of any sensible depth
// fit below it, and nothing is moved.
const relocateBelow = 64

func nofile(ls []Rlimit) int {
	for _, l := range ls {
		if l.Resource == unix.RLIMIT_NOFILE {
			return int(min(l.Cur, 1<<20))
		}
	}
	return relocateBelow
}

// relocate moves descriptor fd to a number of at least above, or leaves it
// where it is when it cannot.
func relocate(fd, above int) int {
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, above)
	if err != nil {
		return fd
	}
	unix.Close(fd)
	return nfd
}

// supervise starts the program and reaps every process of the box until the
// program itself ends; then init exits, and the kernel kills whatever is
// left in the pid namespace (a daemonized grandchild included).
func supervise(rep *reporter, cfg *Config, rc *RunConfig, boxfd, collectFD int) (int, error) {
	path, err := lookPath(rc.Argv[0], rc.Env)
	if err != nil {
		return 0, &execError{err}
	}
	// The program's stdio is init's own; with MergeOutput its stderr is
	// the stdout pipe itself, so that the order of writes across the two
	// streams survives (merging two pipes afterwards cannot recover it).
	files := []uintptr{0, 1, 2}
	if rc.MergeOutput {
		files[2] = 1
	}
	// Caught before the fork, so that none the supervisor sends once the
	// program has started is lost (the child gets them back at their
	// defaults: Go's fork resets the signals it handles).
	fwd := forwardSignals()
	defer fwd.stop()
	restore := preferOOMVictim()
	start := time.Now()
	pid, err := syscall.ForkExec(path, rc.Argv, &syscall.ProcAttr{
		Dir:   rc.Dir[0],
		Env:   rc.Env,
		Files: files,
		Sys: &syscall.SysProcAttr{
			// A new session with no controlling terminal.
			Setsid: true,
			// setgroups is denied in this user namespace, and the
			// supplementary group list is already empty.
			Credential: &syscall.Credential{Uid: uint32(cfg.UID), Gid: uint32(cfg.GID), NoSetGroups: true},
			// If init dies, so does the program (and then the namespace).
			Pdeathsig: syscall.SIGKILL,
		},
	})
	restore()
	if err != nil {
		return 0, &execError{fmt.Errorf("%s: %w", shortName(rc.Argv[0]), err)}
	}
	// The supervisor, on this report, makes init the one process of the
	// box the OOM killer never picks (oom_score_adj -1000), when it holds
	// CAP_SYS_RESOURCE. Only now: a child inherits oom_score_adj and its
	// floor, and the program must stay killable.
	if err := rep.send(Report{Started: true}); err != nil {
		return 0, err
	}
	fwd.to(pid)
	// Our own stdio belongs to the program from now on; holding it would
	// keep the supervisor's pipes open.
	for fd := 0; fd < 3; fd++ {
		unix.Close(fd)
	}
	for {
		var ws unix.WaitStatus
		p, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("wait: %w", err)
		}
		if p != pid {
			continue // an orphan reparented to us
		}
		r := Report{Exited: true, WallNanos: int64(time.Since(start))}
		if ws.Signaled() {
			r.Signal = int(ws.Signal())
		} else {
			r.ExitCode = ws.ExitStatus()
		}
		// Kill the rest of the box now rather than leave it to our exit, so
		// that nothing the program left behind runs on after the report,
		// and reap it all, so that nothing changes the workspace while it
		// is collected.
		_ = unix.Kill(-1, unix.SIGKILL)
		for {
			if _, err := unix.Wait4(-1, nil, 0, nil); err != nil && err != unix.EINTR {
				break // ECHILD: nothing left
			}
		}
		// Nothing to collect: the collection's pipe ends before the
		// report, so that the supervisor, which takes the report as init's
		// last word, does not wait for it.
		if rc.Collect == nil {
			unix.Close(collectFD)
		}
		// The program's end first: the supervisor stops its clocks here,
		// before the collection below, and gives init Collect.MaxNanos and
		// a little more to exit.
		if err := rep.send(r); err != nil {
			return 0, err
		}
		if rc.Collect != nil {
			// Whatever goes wrong in the collection is the collection's
			// own result (files left out, reported as truncated), never
			// init's failure: the program's end is already reported.
			truncated := collect(boxfd, rc.Collect, collectFD)
			unix.Close(collectFD)
			return 0, rep.send(Report{Collected: true, CollectTruncated: truncated})
		}
		return 0, nil
	}
}

// preferOOMVictim makes the program's processes the OOM killer's first
// choice in their box: init raises its own oom_score_adj to 1000 for the
// fork (the child inherits it, and every process it makes after it) and
// the returned function lowers it back. The killer picks the largest
// process of a cgroup at its limit, and tmpfs pages belong to no process:
// a box that filled /box and kept only small processes made init (a Go
// program, its binary's pages counted) the victim, and the run an internal
// error. Raising needs no privilege, and lowering back to a value the
// process had does neither (oom_score_adj_min is not touched); a program
// may lower its own to init's again, and then the supervisor's -1000 on
// init, or its check of the cgroup's OOM kills, answers.
func preferOOMVictim() (restore func()) {
	fd, err := unix.Open("/proc/self/oom_score_adj", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return func() {}
	}
	var buf [16]byte
	n, err := unix.Read(fd, buf[:])
	if err != nil || n == 0 {
		unix.Close(fd)
		return func() {}
	}
	own := strings.TrimSpace(string(buf[:n]))
	if _, err := unix.Pwrite(fd, []byte("1000"), 0); err != nil {
		unix.Close(fd)
		return func() {}
	}
	return func() {
		_, _ = unix.Pwrite(fd, []byte(own), 0)
		unix.Close(fd)
	}
}

// lookPath finds a command without a slash in the PATH of the program's own
// environment, as execvp would, inside the box's filesystem.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	// One path element, which no file system takes beyond NAME_MAX bytes:
	// execvp would fail each stat with ENAMETOOLONG.
	if len(name) > unix.NAME_MAX {
		return "", fmt.Errorf("%s: %w", shortName(name), unix.ENAMETOOLONG)
	}
	path := ""
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			path = kv[len("PATH="):]
		}
	}
	for _, dir := range strings.Split(path, ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + name
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Mode&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: command not found in PATH", shortName(name))
}

// lockDown takes the last steps before untrusted code runs in the box:
// the run's rlimits, no capabilities in the bounding or ambient sets,
// no_new_privs, and the seccomp filter on every thread.
func lockDown(rc *RunConfig) error {
	if err := setRlimits(rc.Rlimits); err != nil {
		return err
	}
	if err := dropPrivileges(); err != nil {
		return err
	}
	return installSeccomp(rc.Seccomp)
}

func setRlimits(ls []Rlimit) error {
	for _, l := range ls {
		// syscall.Setrlimit, not unix.Setrlimit: for RLIMIT_NOFILE it also
		// stops the Go runtime from restoring its saved limit in the child.
		if err := syscall.Setrlimit(l.Resource, &syscall.Rlimit{Cur: l.Cur, Max: l.Max}); err != nil {
			return fmt.Errorf("setrlimit %d: %w", l.Resource, err)
		}
	}
	return nil
}

// dropPrivileges empties the bounding and ambient capability sets and sets
// no_new_privs. The program runs as a non-root uid, so execve gives it no
// capabilities at all; with the bounding set empty, file capabilities and
// setuid binaries give it none either (and every mount is nosuid besides).
func dropPrivileges() error {
	for c := 0; c <= unix.CAP_LAST_CAP; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("drop capability %d from bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	return nil
}

// loopbackUp brings up lo, the only interface of the box's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP | unix.IFF_RUNNING)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	return nil
}

// kernelSigaction is the kernel's struct sigaction on amd64 and arm64.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// unignoreSignals sets every ignored signal but SIGINT and SIGHUP (which
// Main catches) back to the default action. Signals Go handles show its
// handler, not SIG_IGN, and are left alone.
func unignoreSignals() {
	const sigIgn = 1
	for sig := 1; sig <= 64; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) || sig == int(unix.SIGINT) || sig == int(unix.SIGHUP) {
			continue
		}
		var old kernelSigaction
		if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&old)), 8, 0, 0); e != 0 {
			continue
		}
		if old.handler == sigIgn {
			dfl := kernelSigaction{}
			_, _, _ = unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
		}
	}
}

// forwarded are the signals init passes on to the program: the supervisor
// signals init (the one process of the box it holds a pidfd of), and init
// the program. SIGKILL and SIGSTOP cannot be caught, so they travel as
// SignalKillProgram and SignalStopProgram. Only the supervisor can reach
// init with them: the program runs as another uid, without capabilities,
// and the kernel drops a signal its own namespace's processes send to a
// pid 1 that has no handler for it (and here, EPERM for the uid).
var forwarded = []os.Signal{
	syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGABRT, syscall.SIGBUS,
	syscall.SIGFPE, syscall.SIGUSR1, syscall.SIGSEGV, syscall.SIGUSR2, syscall.SIGPIPE, syscall.SIGALRM, syscall.SIGTERM,
	syscall.SIGCONT, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGXCPU, syscall.SIGXFSZ, syscall.SIGVTALRM,
	syscall.SIGWINCH, syscall.SIGIO, syscall.SIGPWR, syscall.SIGSYS, SignalKillProgram, SignalStopProgram,
}

// forwarder passes init's signals on to the program. Go delivers caught
// signals one of each number at a time, lowest number first: two
// different signals sent at the same instant may arrive in either order.
type forwarder struct {
	ch   chan os.Signal
	pid  chan int
	done chan struct{}
}

// forwardSignals catches the forwarded signals; they wait for to.
func forwardSignals() *forwarder {
	f := &forwarder{ch: make(chan os.Signal, 16), pid: make(chan int, 1), done: make(chan struct{})}
	signal.Notify(f.ch, forwarded...)
	go func() {
		defer close(f.done)
		pid, ok := <-f.pid
		for s := range f.ch {
			if !ok {
				continue // no program: dropped
			}
			sig := s.(syscall.Signal)
			switch sig {
			case SignalKillProgram:
				sig = syscall.SIGKILL
			case SignalStopProgram:
				sig = syscall.SIGSTOP
			}
			_ = unix.Kill(pid, sig)
		}
	}()
	return f
}

// to starts the forwarding to pid.
func (f *forwarder) to(pid int) { f.pid <- pid }

// stop ends the forwarding.
func (f *forwarder) stop() {
	signal.Stop(f.ch)
	close(f.pid) // a no-op receive when to was called
	close(f.ch)
	<-f.done
}
