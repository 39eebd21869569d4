package boxinit

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
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

// CloneFlags are the namespaces every box gets.
const CloneFlags = unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWNET |
	unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWCGROUP

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
		fds := receivedFDs(oob[:oobn])
		pid, pidfd, err := spawn(buf[:n], fds)
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

func receivedFDs(oob []byte) []int {
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

func spawn(msg []byte, fds []int) (int, int, error) {
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
	pid, err := syscall.ForkExec("/proc/self/exe", []string{"runbox-init"}, &syscall.ProcAttr{
		Dir:   "/",
		Env:   []string{},
		Files: files,
		Sys:   sys,
	})
	if err != nil {
		return 0, -1, fmt.Errorf("start box: %w", err)
	}
	if pidfd < 0 {
		// Kernels without CLONE_PIDFD (before 5.2): runbox needs 5.12.
		_ = unix.Kill(pid, unix.SIGKILL)
		return 0, -1, errors.New("start box: no pidfd")
	}
	return pid, pidfd, nil
}
