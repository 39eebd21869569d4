package boxinit

import (
	"archive/tar"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxConfig bounds the config message.
const maxConfig = 1 << 20

// Main is the whole life of init. It never returns.
func Main() {
	// The namespace and credential state below belongs to the process, but
	// prctl flags and the seccomp filter are per thread until synced; keep
	// all of it on one thread.
	runtime.LockOSThread()
	if len(os.Args) > 1 && os.Args[1] == SpawnerArg {
		spawnerMain()
		return
	}

	// Non-dumpable first: the box's own processes must never be able to
	// open /proc/1/mem, /proc/1/exe or /proc/1/fd of this process (runc
	// CVE-2019-5736 overwrote the host binary through /proc/self/exe).
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	// Nothing inherited from the supervisor may reach the program: mark
	// every descriptor above stdio close-on-exec (runc CVE-2024-21626 leaked
	// a host directory descriptor into the container).
	_ = unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)

	report := os.NewFile(ReportFD, "report")
	enc := json.NewEncoder(report)
	code, err := run(enc)
	if err != nil {
		var ee *execError
		if errors.As(err, &ee) {
			_ = enc.Encode(Report{ExecError: ee.Error()})
		} else {
			_ = enc.Encode(Report{Error: err.Error()})
		}
		os.Exit(1)
	}
	os.Exit(code)
}

type execError struct{ err error }

func (e *execError) Error() string { return e.err.Error() }

// readMessage reads one length-prefixed JSON message.
func readMessage(r io.Reader, v any) error {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return fmt.Errorf("read config length: %w", err)
	}
	size := binary.LittleEndian.Uint32(n[:])
	if size > maxConfig {
		return fmt.Errorf("config of %d bytes is too large", size)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode config: %w", err)
	}
	return nil
}

func run(enc *json.Encoder) (int, error) {
	ctrl := os.NewFile(ControlFD, "control")
	var cfg Config
	if err := readMessage(ctrl, &cfg); err != nil {
		return 0, err
	}
	if cfg.UID == 0 || cfg.GID == 0 {
		return 0, errors.New("config: the program must not run as root")
	}
	// Everything that does not depend on the request.
	if err := buildRoot(&cfg); err != nil {
		return 0, err
	}
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		return 0, fmt.Errorf("sethostname: %w", err)
	}
	if err := loopbackUp(); err != nil {
		return 0, err
	}
	if err := enc.Encode(Report{Ready: true}); err != nil {
		return 0, err
	}

	// Then wait, maybe for long, until a request takes this box.
	var rc RunConfig
	if err := readMessage(ctrl, &rc); err != nil {
		return 0, err
	}
	if len(rc.Argv) == 0 {
		return 0, errors.New("config: empty argv")
	}
	for _, m := range []struct {
		dir  string
		size TmpfsSize
	}{{"/box", rc.Workspace}, {"/tmp", rc.Tmp}, {"/dev/shm", rc.Shm}} {
		if err := resizeTmpfs(m.dir, m.size); err != nil {
			return 0, err
		}
	}
	if err := extract(tar.NewReader(ctrl), "/box", cfg.UID, cfg.GID); err != nil {
		return 0, fmt.Errorf("workspace files: %w", err)
	}
	ctrl.Close()
	// The workspace as it is now, before the program can rename or replace
	// anything in it: collection walks from this descriptor.
	boxfd, err := unix.Open("/box", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return 0, fmt.Errorf("open workspace: %w", err)
	}
	if err := setRlimits(rc.Rlimits); err != nil {
		return 0, err
	}
	if err := dropPrivileges(); err != nil {
		return 0, err
	}
	if err := installSeccomp(rc.Seccomp); err != nil {
		return 0, err
	}
	return supervise(enc, &cfg, &rc, boxfd)
}

// supervise starts the program and reaps every process of the box until the
// program itself ends; then init exits, and the kernel kills whatever is
// left in the pid namespace (a daemonized grandchild included).
func supervise(enc *json.Encoder, cfg *Config, rc *RunConfig, boxfd int) (int, error) {
	path, err := lookPath(rc.Argv[0], rc.Env)
	if err != nil {
		return 0, &execError{err}
	}
	start := time.Now()
	pid, err := syscall.ForkExec(path, rc.Argv, &syscall.ProcAttr{
		Dir:   rc.Dir,
		Env:   rc.Env,
		Files: []uintptr{0, 1, 2},
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
	if err != nil {
		return 0, &execError{fmt.Errorf("%s: %w", rc.Argv[0], err)}
	}
	if err := enc.Encode(Report{Started: true}); err != nil {
		return 0, err
	}
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
		// The program's end first: the supervisor stops its clocks here,
		// before the collection below.
		if err := enc.Encode(r); err != nil {
			return 0, err
		}
		out := os.NewFile(CollectFD, "collect")
		if rc.Collect != nil {
			truncated, err := collect(boxfd, rc.Collect, out)
			if err != nil {
				return 0, fmt.Errorf("collect files: %w", err)
			}
			if err := enc.Encode(Report{Collected: true, CollectTruncated: truncated}); err != nil {
				return 0, err
			}
		}
		out.Close()
		return 0, nil
	}
}

// lookPath finds a command without a slash in the PATH of the program's own
// environment, as execvp would, inside the box's filesystem.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
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
	return "", fmt.Errorf("%s: command not found in PATH", name)
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
