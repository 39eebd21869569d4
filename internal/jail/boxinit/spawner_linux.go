package boxinit

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// SpawnerArg as argv[1] makes runbox-init a spawner instead of a box's init.
//
// Why a spawner: a process that creates a user namespace cannot share its
// memory with the child while the id maps are written, so Go forks it in
// full, copying the page tables of the whole supervisor; the supervisor
// then takes copy-on-write faults on every page it touches. A box cost
// 7 ms from a small supervisor and 56 ms from one with 512 MiB in use. The
// spawner is runbox-init itself, started once and kept small; the
// supervisor sends it the box's descriptors over a unix socket and it
// does the clone.
const SpawnerArg = "spawner"

// SpawnerFD is the spawner's end of its SOCK_SEQPACKET socket.
const SpawnerFD = 3

// SpawnRequest asks for one box. Its descriptors travel as SCM_RIGHTS, in
// order: stdin, stdout, stderr, control, report, collect, and the cgroup
// directory when CgroupFD is set.
type SpawnRequest struct {
	RootID   int  `json:"root_id"` // host id of the box's root (init)
	UserID   int  `json:"user_id"` // host id of the program
	BoxID    int  `json:"box_id"`  // the program's id inside the box
	CgroupFD bool `json:"cgroup_fd"`
}

// SpawnReply answers a SpawnRequest; on success a pidfd of the new init
// travels as SCM_RIGHTS.
type SpawnReply struct {
	Pid   int    `json:"pid"`
	Error string `json:"error,omitempty"`
}

// CloneFlags are the namespaces a box is cloned with. Its cgroup namespace
// comes later: init makes it once it is in its cgroup (see run).
const CloneFlags = unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWNET |
	unix.CLONE_NEWIPC | unix.CLONE_NEWUTS

// secbitNoSetuidFixup is SECBIT_NO_SETUID_FIXUP (linux/securebits.h): a
// change of uids no longer clears the thread's capabilities.
const secbitNoSetuidFixup = 1 << 2

// maxSpawnFDs bounds the descriptors one request may carry.
const maxSpawnFDs = 7

// boxFDs is how many descriptors a box's init starts with.
const boxFDs = CollectFD + 1

func spawnerMain() {
	// The supervisor decides when boxes die; a terminal's Ctrl-C reaches
	// the supervisor, not this helper. We die with it (PR_SET_PDEATHSIG,
	// set by the supervisor) or when it closes our socket.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	// SIGCHLD ignored: the kernel reaps each box's init the moment it
	// exits, so no zombie outlives a box; the supervisor learns of the end
	// through its pidfd, which the kernel signals once init and every other
	// process of its pid namespace are gone.
	signal.Ignore(syscall.SIGCHLD)
	// A descriptor the supervisor's own parent leaked to it without
	// close-on-exec reaches us too; it must not reach a box's init.
	_ = unix.CloseRange(SpawnerFD+1, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	// This thread (Main locked it) keeps its capabilities while its euid
	// is a box's root id, in spawn. Credentials are per thread: the rest of
	// the process is unaffected, and the Go runtime starts new threads from
	// a template thread, never from one locked this way.
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, unix.PR_SET_SECUREBITS, secbitNoSetuidFixup, 0); e != 0 {
		os.Exit(1) // the supervisor sees its socket close
	}
	if err := mountDeviceRoot(); err != nil {
		os.Exit(1)
	}
	// Boxes are cloned from this thread: their init inherits its timer
	// slack, across exec, in every thread it starts.
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, boxSlack, 0, 0, 0); err != nil {
		os.Exit(1)
	}
	deviceDirs := map[int]struct{}{}
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4*maxSpawnFDs))
	for {
		n, oobn, _, _, err := unix.Recvmsg(SpawnerFD, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			os.Exit(0) // the supervisor is gone
		}
		fds := ReceivedFDs(oob[:oobn])
		pid, pidfd, err := spawn(buf[:n], fds, deviceDirs)
		for _, fd := range fds {
			unix.Close(fd)
		}
		reply := SpawnReply{Pid: pid}
		var rights []byte
		if err != nil {
			reply.Error = err.Error()
		} else {
			rights = unix.UnixRights(pidfd)
		}
		b, _ := json.Marshal(reply)
		err = unix.Sendmsg(SpawnerFD, b, rights, nil, 0)
		if pidfd >= 0 {
			unix.Close(pidfd)
		}
		if err != nil {
			os.Exit(0)
		}
	}
}

// ReceivedFDs are the descriptors an SCM_RIGHTS control message carried.
func ReceivedFDs(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, m := range msgs {
		if r, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, r...)
		}
	}
	return fds
}

// deviceDirs are the device directories made and not yet seen empty (see
// makeDevices): at most one per uid slot, since a slot's next box replaces
// its directory.
func spawn(msg []byte, fds []int, deviceDirs map[int]struct{}) (int, int, error) {
	var req SpawnRequest
	if err := json.Unmarshal(msg, &req); err != nil {
		return 0, -1, fmt.Errorf("spawn request: %w", err)
	}
	want := boxFDs
	if req.CgroupFD {
		want++
	}
	if len(fds) != want || req.RootID <= 0 || req.UserID <= 0 || req.BoxID <= 0 {
		return 0, -1, errors.New("spawn request: malformed")
	}
	pidfd := -1
	sys := &syscall.SysProcAttr{
		Cloneflags: CloneFlags,
		UidMappings: []syscall.SysProcIDMap{
			{ContainerID: 0, HostID: req.RootID, Size: 1},
			{ContainerID: req.BoxID, HostID: req.UserID, Size: 1},
		},
		GidMappings: []syscall.SysProcIDMap{
			{ContainerID: 0, HostID: req.RootID, Size: 1},
			{ContainerID: req.BoxID, HostID: req.UserID, Size: 1},
		},
		// "deny" in /proc/<pid>/setgroups: nothing in the box may ever
		// change its supplementary groups (CVE-2014-8989).
		GidMappingsEnableSetgroups: false,
		// init runs as root of the box's user namespace, so it keeps its
		// capabilities there across execve; it never has any on the host.
		Credential: &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
		Setsid:     true,
		// If the spawner dies (it dies with the supervisor), so does init,
		// and with it the whole pid namespace.
		Pdeathsig: syscall.SIGKILL,
		// A pidfd from clone itself: it names this process even after it
		// is reaped and its pid reused.
		PidFD: &pidfd,
	}
	if req.CgroupFD {
		// cgroup v2: born inside its cgroup, no migration afterwards.
		sys.UseCgroupFD = true
		sys.CgroupFD = fds[boxFDs]
	}
	files := make([]uintptr, boxFDs)
	for i := range files {
		files[i] = uintptr(fds[i])
	}
	// The new user namespace belongs to the euid of the thread that
	// clones it, and the kernel charges every per-user count made inside
	// (inotify instances and watches, queued signals, POSIX message-queue
	// bytes, user namespaces; the ucounts of kernel/ucount.c) to that owner
	// as well as to the caller. Cloned by root, every box would draw on
	// host root's counts, and one box could exhaust them for the host and
	// every other box (fs.inotify.max_user_instances is 128). So the clone
	// runs with this thread's euid and egid set to the box's root ids;
	// root keeps its capabilities (SECBIT_NO_SETUID_FIXUP) only to write
	// the id maps, which Go's ForkExec does from this same thread. The
	// securebit does not reach the box: a new user namespace starts its
	// creator's credentials afresh, securebits included
	// (set_cred_user_ns in kernel/user_namespace.c).
	devDir, err := makeDevices(req.RootID, deviceDirs)
	if err != nil {
		return 0, -1, fmt.Errorf("start box: %w", err)
	}
	pid, err := asBoxRoot(req.RootID, func() (int, error) {
		return syscall.ForkExec("/proc/self/exe", []string{"runbox-init", devDir}, &syscall.ProcAttr{
			Dir:   "/",
			Env:   InitEnv,
			Files: files,
			Sys:   sys,
		})
	})
	if err != nil {
		if pidfd >= 0 {
			unix.Close(pidfd)
		}
		return 0, -1, fmt.Errorf("start box: %w", err)
	}
	if pidfd < 0 {
		// Kernels without CLONE_PIDFD (before 5.2): runbox needs 5.12.
		_ = unix.Kill(pid, unix.SIGKILL)
		return 0, -1, errors.New("start box: no pidfd")
	}
	// Every id map is written before init reads its Config, that is
	// before anything in the box runs. An unwritten projid_map could be
	// written once by the box itself, with any host project ids: a projid
	// map needs no capability (new_idmap_permitted in
	// kernel/user_namespace.c allows it when there is no capability to
	// check).
	if err := writeProc(pid, "projid_map", "0 "+strconv.Itoa(req.RootID)+" 1\n"); err != nil {
		_ = unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
		unix.Close(pidfd)
		return 0, -1, fmt.Errorf("start box: %w", err)
	}
	return pid, pidfd, nil
}

// asBoxRoot runs f on this thread with its effective uid and gid set to
// id, the box's root on the host, and then back to root. The real and saved
// ids stay 0, so the way back is always allowed. Raw system calls:
// syscall.Setresuid changes every thread of the process.
func asBoxRoot(id int, f func() (int, error)) (int, error) {
	const keep = ^uintptr(0) // -1: unchanged
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESGID, keep, uintptr(id), keep); e != 0 {
		return 0, fmt.Errorf("setresgid: %w", e)
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, keep, uintptr(id), keep); e != 0 {
		restoreRoot()
		return 0, fmt.Errorf("setresuid: %w", e)
	}
	pid, err := f()
	restoreRoot()
	return pid, err
}

func restoreRoot() {
	const keep = ^uintptr(0)
	_, _, e1 := syscall.RawSyscall(syscall.SYS_SETRESUID, keep, 0, keep)
	_, _, e2 := syscall.RawSyscall(syscall.SYS_SETRESGID, keep, 0, keep)
	if e1 != 0 || e2 != 0 {
		// Cannot happen (the saved ids are 0); a spawner that is not
		// root any more must not go on.
		os.Exit(1)
	}
}

// writeProc writes one /proc/<pid> file of the host's procfs.
func writeProc(pid int, name, data string) error {
	p := "/proc/" + strconv.Itoa(pid) + "/" + name
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", p, err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(data)); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// DeviceRoot is where the spawner makes each box's device nodes, in a
// tmpfs of its own mount namespace (the supervisor starts it in a new one),
// so nothing of it is visible on the host.
const DeviceRoot = "/dev"

// deviceNumbers are the character devices a box may have, by name.
var deviceNumbers = map[string]uint64{
	"null": unix.Mkdev(1, 3), "zero": unix.Mkdev(1, 5), "full": unix.Mkdev(1, 7),
	"random": unix.Mkdev(1, 8), "urandom": unix.Mkdev(1, 9),
}

// mountDeviceRoot covers DeviceRoot with a tmpfs in the spawner's own mount
// namespace. Mounts there are made slaves of the host's first, so that the
// host's later mounts still reach boxes but nothing of ours reaches the
// host. The tmpfs is mounted by host root, so its device nodes open (a
// tmpfs mounted inside a box's user namespace could hold none that do).
func mountDeviceRoot() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("make mounts slaves: %w", err)
	}
	return unix.Mount("tmpfs", DeviceRoot, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0711,size=16k")
}

// makeDevices makes fresh device nodes for one box, in a directory of
// DeviceRoot owned by the box's root id, and returns the directory; the
// box's init opens them as bind sources and removes them.
//
// Why not bind the host's /dev/null and the rest: a bind shares the inode,
// and with it every per-inode channel — inotify on /dev/null reports every
// write the host or another box makes to it (hundreds of thousands a
// second), a flock taken on it blocks everyone else's. Fresh nodes give
// each box inodes of its own that reach the same drivers.
//
// Init cannot remove the directory itself (DeviceRoot is not its to write),
// so each call first removes the directories whose nodes are gone.
func makeDevices(rootID int, deviceDirs map[int]struct{}) (string, error) {
	for id := range deviceDirs {
		if err := unix.Rmdir(DeviceRoot + "/" + strconv.Itoa(id)); err == nil || err == unix.ENOENT {
			delete(deviceDirs, id)
		}
	}
	dir := DeviceRoot + "/" + strconv.Itoa(rootID)
	deviceDirs[rootID] = struct{}{}
	// What an earlier box of this slot left, if its init died first.
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("devices: %w", err)
	}
	if err := unix.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("devices: %w", err)
	}
	for name, dev := range deviceNumbers {
		p := dir + "/" + name
		if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(dev)); err != nil {
			return "", fmt.Errorf("devices: %w", err)
		}
		if err := unix.Chmod(p, 0o666); err != nil { // whatever the umask
			return "", fmt.Errorf("devices: %w", err)
		}
	}
	if err := unix.Chown(dir, rootID, rootID); err != nil {
		return "", fmt.Errorf("devices: %w", err)
	}
	return dir, nil
}

// boxSlack is the timer slack of a box's init while it builds the root.
// The Go runtime's sysmon thread sleeps 20 µs at a time while the process
// runs, and only backs off after 50 sleeps in which it found nothing to
// do: about the time init takes to build a root. With the kernel's usual
// 50 µs of slack it woke, and preempted init's own thread on its CPU,
// every ~90 µs of that build (sched_switch traces: a box's init switched
// 270 times per box, 193 with this slack; the machine CPU per box of
// JailPool/true fell by 0.7 to 1 ms). A 1 ms slack lets the kernel defer
// those wake-ups; nothing init does before the program runs waits on a
// timer that needs better.
const boxSlack = 1_000_000

// programSlack is the timer slack a box's program and session commands
// start with: the kernel's default for a normal thread, what they would
// have outside a box (a program's sleeps and timeouts must not grow).
const programSlack = 50_000

// InitEnv is the environment of runbox-init, as the spawner and in every
// box (never the program's, which its RunConfig gives). One P: init waits
// more than it computes, and idle Ps are threads that spin and futex-wake
// on every event. No collection until the heap nears GOMEMLIMIT: a run's
// init lives milliseconds, and a session's init stays bounded.
var InitEnv = []string{"GOMAXPROCS=1", "GOGC=off", "GOMEMLIMIT=32MiB"}
