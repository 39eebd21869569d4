// Package cgroup owns runbox's control groups: one group per box, created
// under the supervisor's own cgroup (as systemd delegation expects) on cgroup
// v1 or v2, with memory, pids and cpu limits, usage statistics, kill and
// removal. It never touches a cgroup it did not create.
package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Version is the cgroup hierarchy layout in use.
type Version int

const (
	V1 Version = 1
	V2 Version = 2
)

func (v Version) String() string { return "v" + strconv.Itoa(int(v)) }

// Limits for one box. Zero means "no limit" for each field.
type Limits struct {
	MemoryBytes int64
	Pids        int64
	// CPUQuota is the CPU bandwidth in cores (1.5 = one and a half cores).
	CPUQuota float64
}

// Stats of one box.
type Stats struct {
	CPUTime    time.Duration
	MemoryPeak int64
	OOMKills   int64
}

// ErrNoCgroups means no usable cgroup hierarchy with the memory and pids
// controllers was found.
var ErrNoCgroups = errors.New("no cgroup hierarchy with the memory and pids controllers")

// Controllers runbox uses. memory and pids are required; cpu and cpuacct are
// used when present.
var (
	required = []string{"memory", "pids"}
	optional = []string{"cpu", "cpuacct"}
)

// Layout is where runbox's cgroups live: for v1 one directory per
// controller, for v2 a single directory. It is computed by Discover, a pure
// function of /proc/self/mountinfo and /proc/self/cgroup.
type Layout struct {
	Version Version
	// V1: controller name → the directory of our own cgroup in that
	// controller's hierarchy. Controllers co-mounted share a directory.
	V1 map[string]string
	// V2: the directory of our own cgroup.
	V2 string
	// V2Controllers available in our own cgroup (cgroup.controllers).
	V2Controllers []string
}

// Discover reads the mount table and our own membership and decides the
// layout: cgroup v1 when the memory controller is on a v1 hierarchy (hybrid
// hosts), otherwise v2.
func Discover() (Layout, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return Layout{}, fmt.Errorf("discover cgroups: %w", err)
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return Layout{}, fmt.Errorf("discover cgroups: %w", err)
	}
	l, err := ParseLayout(string(mi), string(self))
	if err != nil {
		return l, err
	}
	if l.Version == V2 {
		b, err := os.ReadFile(filepath.Join(l.V2, "cgroup.controllers"))
		if err != nil {
			return l, fmt.Errorf("discover cgroups: %w", err)
		}
		l.V2Controllers = strings.Fields(string(b))
	}
	return l, nil
}

// ParseLayout is the pure part of Discover.
func ParseLayout(mountinfo, selfCgroup string) (Layout, error) {
	own1 := map[string]string{} // controller → path inside its hierarchy
	own2 := ""
	has2 := false
	for _, line := range strings.Split(selfCgroup, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			own2, has2 = parts[2], true
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			own1[c] = parts[2]
		}
	}
	v1 := map[string]string{}
	v2mnt := ""
	for _, line := range strings.Split(mountinfo, "\n") {
		// id parent major:minor root mountpoint options [optional…] - fstype source superopts
		sep := strings.Index(line, " - ")
		if sep < 0 {
			continue
		}
		pre, post := strings.Fields(line[:sep]), strings.Fields(line[sep+3:])
		if len(pre) < 5 || len(post) < 3 {
			continue
		}
		root, mnt := unescape(pre[3]), unescape(pre[4])
		switch post[0] {
		case "cgroup2":
			if root == "/" {
				v2mnt = mnt
			}
		case "cgroup":
			for _, opt := range strings.Split(post[2], ",") {
				own, ok := own1[opt]
				if !ok {
					continue
				}
				rel, err := filepath.Rel(root, own)
				if err != nil || strings.HasPrefix(rel, "..") {
					continue // our cgroup is not visible through this mount
				}
				v1[opt] = filepath.Join(mnt, rel)
			}
		}
	}
	if _, ok := v1["memory"]; ok {
		for _, c := range required {
			if _, ok := v1[c]; !ok {
				return Layout{}, fmt.Errorf("%w: v1 controller %s not mounted", ErrNoCgroups, c)
			}
		}
		return Layout{Version: V1, V1: v1}, nil
	}
	if v2mnt != "" && has2 {
		return Layout{Version: V2, V2: filepath.Join(v2mnt, own2)}, nil
	}
	return Layout{}, ErrNoCgroups
}

// unescape undoes mountinfo's octal escapes (\040 for space and so on).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// writeFile writes a control file. Control files are opened without O_CREAT:
// a missing file is an error, never a new regular file. Control files are
// read and written with plain system calls, not through os.File, which
// would register each with the runtime's poller (kernfs files are pollable)
// and take two more system calls per open: boxes open a dozen per run.
func writeFile(dir, name, value string) error {
	path := filepath.Join(dir, name)
	fd, err := openControl(path, unix.O_WRONLY|unix.O_TRUNC)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for {
		_, err = unix.Write(fd, []byte(value))
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// openControl opens a control file (never creating it, never following a
// final symlink).
func openControl(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// maxControlRead bounds what is read of one control file (memory.stat, the
// largest read, is about 1.5 KiB).
const maxControlRead = 64 << 10

// readControl reads a control file whole.
func readControl(path string) ([]byte, error) {
	fd, err := openControl(path, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 512)
	for len(buf) < maxControlRead {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
	return nil, fmt.Errorf("read %s: larger than %d bytes", path, maxControlRead)
}

func readInt(dir, name string) (int64, error) {
	b, err := readControl(filepath.Join(dir, name))
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return -1, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

// readKey reads "key value" lines (memory.oom_control, memory.events,
// cpu.stat) and returns the value of key.
func readKey(dir, name, key string) (int64, error) {
	b, err := readControl(filepath.Join(dir, name))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == key {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no key %s", filepath.Join(dir, name), key)
}

// rmdirRetry removes a cgroup directory, retrying while the kernel still
// counts exiting tasks in it.
func rmdirRetry(dir string) error {
	var err error
	for i := 0; i < 200; i++ {
		err = os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup: %w", err)
}
