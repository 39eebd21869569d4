package boxinit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// procKept are the top-level /proc entries a box sees as they are, besides
// the processes' own directories: links into them (self, thread-self,
// mounts, net: per process, per namespace), sysvipc (the box's ipc
// namespace), sys (read-only, see maskProc), filesystems and version
// (static), and cpuinfo and meminfo, which the JVM, Go, Node and CPython
// read to size themselves, although meminfo shows the host's free memory
// (as sysinfo(2) does anyway).
var procKept = map[string]bool{
	"self": true, "thread-self": true, "mounts": true, "net": true, "sysvipc": true, "sys": true,
	"filesystems": true, "version": true, "cpuinfo": true, "meminfo": true,
}

// procSysMasked are /proc/sys entries that identify the host or count its
// activity (open files, inodes, dentries, AIO requests, ptys, quota
// operations across the whole host).
var procSysMasked = []string{
	"kernel/random/boot_id", "kernel/pty/nr", "fs/file-nr", "fs/inode-nr", "fs/inode-state",
	"fs/dentry-state", "fs/dentry-negative", "fs/aio-nr", "fs/quota",
}

// maskProc hides what a fresh procfs shows of the host, as runc masks paths
// but by allowlist: every top-level entry not in procKept is covered by an
// empty read-only file or directory, so host-wide counters a kernel adds
// later (or a vendor's, such as /proc/program_cpu) are masked too. That
// covers the kernel command line (with the VM agent's arguments), keys and
// key-users, locks (host lock inodes), interrupts, softirqs, disk, memory
// and scheduler statistics, pressure, cgroups (the host's count of boxes),
// kallsyms, the kernel's config and the rest. stat, uptime and loadavg keep
// their format, which glibc, libuv and procps parse (an empty /proc/stat
// leaves Node's os.cpus() empty), with every counter 0: what remains is a
// line per CPU, the boot time, and the uptime when the box was made, which
// sched_getaffinity and CLOCK_BOOTTIME tell anyway. That uptime does not
// advance (so ps shows nonsense ELAPSED times): the idle time beside it,
// summed over the host's CPUs, would show the host's load as it changes.
// /proc/sys is bound read-only, and procSysMasked masked within it.
//
// The masks come from a small tmpfs made read-only before anything is
// bound from it: writing through a mask fails with EROFS, and the box can
// neither remount nor unmount anything (seccomp refuses the mount calls).
func maskProc(proc string) error {
	stage := filepath.Join(newRoot, ".mask")
	if err := os.Mkdir(stage, 0o700); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", stage, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=64k,nr_inodes=16,mode=0555"); err != nil {
		return fmt.Errorf("mount /proc masks: %w", err)
	}
	synth := map[string][]byte{"loadavg": []byte("0.00 0.00 0.00 1/1 1\n")}
	for _, name := range []string{"stat", "uptime"} {
		real, err := os.ReadFile(filepath.Join(proc, name))
		if err != nil {
			return fmt.Errorf("read /proc/%s: %w", name, err)
		}
		synth[name] = zeroCounters(name, real)
	}
	files := map[string][]byte{"empty": nil}
	for name, b := range synth {
		files[name] = b
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(stage, name), b, 0o444); err != nil {
			return fmt.Errorf("write /proc mask %s: %w", name, err)
		}
	}
	if err := os.Mkdir(filepath.Join(stage, "dir"), 0o555); err != nil {
		return err
	}
	if err := unix.Mount("", stage, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("remount /proc masks read-only: %w", err)
	}

	// /proc/sys read-only first: masks inside it go on top.
	sys := filepath.Join(proc, "sys")
	if err := unix.Mount(sys, sys, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind /proc/sys: %w", err)
	}
	if err := unix.MountSetattr(-1, sys, 0, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC}); err != nil {
		return fmt.Errorf("make /proc/sys read-only: %w", err)
	}

	cover := func(target string, isDir bool, name string) error {
		from := filepath.Join(stage, "empty")
		switch {
		case isDir:
			from = filepath.Join(stage, "dir")
		case name != "":
			from = filepath.Join(stage, name)
		}
		if err := unix.Mount(from, target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("mask %s: %w", target, err)
		}
		return nil
	}
	// An entry whose mode grants nothing to others needs no mask: procfs
	// files belong to the host's root user and group, which no id of the
	// box is, and no capability of the box's user namespace overrides their
	// permissions. That spares a mount for kcore, kmsg, kpage*, slabinfo,
	// timer_list, sysrq-trigger and the like.
	maskable := func(target string) (isDir, ok bool, err error) {
		var st unix.Stat_t
		if err := unix.Lstat(target, &st); errors.Is(err, unix.ENOENT) {
			return false, false, nil
		} else if err != nil {
			return false, false, fmt.Errorf("mask %s: %w", target, err)
		}
		kind := st.Mode & unix.S_IFMT
		return kind == unix.S_IFDIR, kind != unix.S_IFLNK && st.Mode&0o007 != 0, nil
	}
	names, err := procEntries(proc)
	if err != nil {
		return err
	}
	for _, name := range names {
		if _, err := strconv.Atoi(name); err == nil || procKept[name] {
			continue
		}
		target := filepath.Join(proc, name)
		isDir, ok, err := maskable(target)
		if err != nil {
			return err
		}
		synthName := ""
		if _, synthesized := synth[name]; synthesized {
			synthName, ok = name, true
		}
		if ok {
			if err := cover(target, isDir, synthName); err != nil {
				return err
			}
		}
	}
	for _, p := range procSysMasked {
		target := filepath.Join(sys, p)
		isDir, ok, err := maskable(target)
		if err != nil {
			return err
		}
		if ok {
			if err := cover(target, isDir, ""); err != nil {
				return err
			}
		}
	}

	// The binds hold the tmpfs; its staging mount and directory go.
	if err := unix.Unmount(stage, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount /proc mask stage: %w", err)
	}
	return os.Remove(stage)
}

// procEntries lists the names in a directory, unsorted.
func procEntries(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// zeroCounters rewrites /proc/stat or /proc/uptime with every counter of
// host activity set to 0, keeping the lines and fields parsers look for:
// in stat, one line per CPU and the boot time; in uptime, the time since
// boot (the idle time summed over CPUs would show the host's load).
func zeroCounters(name string, real []byte) []byte {
	var b bytes.Buffer
	if name == "uptime" {
		up, _, _ := strings.Cut(strings.TrimSpace(string(real)), " ")
		b.WriteString(up + " 0.00\n")
		return b.Bytes()
	}
	for _, line := range strings.Split(strings.TrimSpace(string(real)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if f[0] == "btime" {
			b.WriteString(line + "\n")
			continue
		}
		b.WriteString(f[0])
		for range f[1:] {
			b.WriteString(" 0")
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}
