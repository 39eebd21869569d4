package jail_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runbox-dev/runbox/internal/jail"
)

// Everything in this file tries, from inside a box, to reach what the host
// and every other box share — kernel pools, the page cache, file locks and
// change notifications on the system files, host-wide /proc — and asserts
// that the attempt fails or sees nothing.

// hostwideDir is where the hostwide jail shows a host directory of the
// test's, so that the host can write, dirty and lock files the box sees,
// which it must not do to /usr.
const hostwideDir = "/srv/hostwide"

// hostwideJail opens a jail whose boxes also see a fresh host directory
// (returned) at hostwideDir, read-only like the system directories.
func hostwideJail(t *testing.T) (*jail.Jail, string) {
	t.Helper()
	needJail(t)
	dir, err := os.MkdirTemp("", "runbox-hostwide-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// Box ids must be able to reach it, as they reach /usr.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig
	cfg.Pool = 0
	cfg.Binds = append(append([]jail.Bind{}, testConfig.Binds...), jail.Bind{Src: dir, Dst: hostwideDir})
	j, err := jail.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j, dir
}

func runIn(t *testing.T, j *jail.Jail, spec jail.Spec) jail.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	res, err := j.Run(ctx, spec)
	if err != nil {
		t.Fatalf("run %q: %v", spec.Argv, err)
	}
	return res
}

// systemProgram is a file under /usr/bin that every box sees: python3's
// real file, which the host and other boxes open all the time.
func systemProgram(t *testing.T) string {
	t.Helper()
	p, err := filepath.EvalSymlinks("/usr/bin/python3")
	if err != nil || !strings.HasPrefix(p, "/usr/") {
		t.Skip("requires /usr/bin/python3")
	}
	return p
}

// whileRunning calls f over and over in a goroutine until the returned stop
// function is called; stop returns how many times f ran.
func whileRunning(t *testing.T, f func() error) (stop func() int) {
	t.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	var n int
	var ferr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := f(); err != nil {
				ferr = err
				return
			}
			n++
			time.Sleep(time.Millisecond)
		}
	}()
	return func() int {
		close(done)
		wg.Wait()
		if ferr != nil {
			t.Fatalf("host activity: %v", ferr)
		}
		return n
	}
}

// inotify and dnotify from a box must see nothing of what the host does to
// the files and directories the box shares with it.
func TestHostwideNotify(t *testing.T) {
	j, dir := hostwideJail(t)
	prog := systemProgram(t)
	watched := filepath.Join(dir, "watched")
	if err := os.WriteFile(watched, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		paths []string
		host  func() error
	}{
		{"host reads a system program", []string{"/usr/bin", prog}, func() error {
			f, err := os.Open(prog)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.Read(make([]byte, 512))
			return err
		}},
		{"host writes to /dev/null", []string{"/dev", "/dev/null", "/dev/zero"}, func() error {
			return os.WriteFile(os.DevNull, []byte("x"), 0)
		}},
		{"host writes in a shared directory", []string{hostwideDir, hostwideDir + "/watched"}, func() error {
			if err := os.WriteFile(watched, []byte("changed"), 0o644); err != nil {
				return err
			}
			p := filepath.Join(dir, "new")
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				return err
			}
			return os.Remove(p)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stop := whileRunning(t, tc.host)
			res := runIn(t, j, jail.Spec{Argv: append([]string{"./notify", "1000"}, tc.paths...), Files: []jail.File{cProg(t, "notify")}})
			if n := stop(); n == 0 {
				t.Fatal("the host did nothing while the box watched")
			}
			expectStatus(t, res, jail.StatusOK)
			got := fields(t, res.Stdout)
			if got["inotify_add_watch"] != "0" {
				t.Errorf("inotify watch: errno %s; the test watches nothing", got["inotify_add_watch"])
			}
			if got["inotify_events"] != "0" {
				t.Errorf("inotify in the box saw %s events of the host's", got["inotify_events"])
			}
			if got["dnotify"] != eperm {
				t.Errorf("fcntl(F_NOTIFY): errno %s, want EPERM", got["dnotify"])
			}
			if got["dnotify_events"] != "0" {
				t.Errorf("dnotify in the box saw %s events of the host's", got["dnotify_events"])
			}
		})
	}
}

// A lock the host holds on a shared file must neither block a box nor be
// visible to it (and the other way round: see the test below).
func TestHostwideLocks(t *testing.T) {
	j, dir := hostwideJail(t)
	prog := systemProgram(t)
	shared := filepath.Join(dir, "shared")
	if err := os.WriteFile(shared, []byte("shared"), 0o644); err != nil {
		t.Fatal(err)
	}
	flock := func(f *os.File) error { return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) }
	fcntl := func(cmd int, typ int16) func(f *os.File) error {
		return func(f *os.File) error {
			return unix.FcntlFlock(f.Fd(), cmd, &unix.Flock_t{Type: typ, Whence: 0})
		}
	}
	const fUnlck = "2" // F_GETLK found no lock in the way
	cases := []struct {
		name      string
		host, box string // the same file as the host and the box see it
		write     bool   // the host opens it for writing (to take a write lock)
		lock      func(*os.File) error
		want      map[string]string
	}{
		{"flock on a system program", prog, prog, false, flock,
			map[string]string{"flock_ex": "0"}},
		{"POSIX read lock on a system program", prog, prog, false, fcntl(unix.F_SETLK, unix.F_RDLCK),
			map[string]string{"posix_rdlck": "0", "posix_getlk": fUnlck}},
		{"OFD read lock on a system program", prog, prog, false, fcntl(unix.F_OFD_SETLK, unix.F_RDLCK),
			map[string]string{"ofd_rdlck": "0", "ofd_getlk": fUnlck}},
		{"flock on /dev/null", os.DevNull, "/dev/null", false, flock,
			map[string]string{"flock_ex": "0"}},
		{"POSIX read lock on /dev/null", os.DevNull, "/dev/null", false, fcntl(unix.F_SETLK, unix.F_RDLCK),
			map[string]string{"posix_rdlck": "0", "posix_getlk": fUnlck}},
		{"flock on a shared file", shared, hostwideDir + "/shared", false, flock,
			map[string]string{"flock_ex": "0"}},
		{"POSIX write lock on a shared file", shared, hostwideDir + "/shared", true, fcntl(unix.F_SETLK, unix.F_WRLCK),
			map[string]string{"posix_rdlck": "0", "posix_getlk": fUnlck}},
		{"OFD write lock on a shared file", shared, hostwideDir + "/shared", true, fcntl(unix.F_OFD_SETLK, unix.F_WRLCK),
			map[string]string{"ofd_rdlck": "0", "ofd_getlk": fUnlck}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			flag := os.O_RDONLY
			if tc.write {
				flag = os.O_RDWR
			}
			f, err := os.OpenFile(tc.host, flag, 0)
			if err != nil {
				t.Fatal(err)
			}
			// Closing the file drops the host's lock, whatever its kind.
			defer f.Close()
			if err := tc.lock(f); err != nil {
				t.Fatalf("host lock: %v", err)
			}
			res := runIn(t, j, jail.Spec{Argv: []string{"./locks", "probe", tc.box}, Files: []jail.File{cProg(t, "locks")}})
			expectStatus(t, res, jail.StatusOK)
			got := fields(t, res.Stdout)
			if got["open"] != "0" {
				t.Fatalf("the box could not open %s:\n%s", tc.box, res.Stdout)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s: %s, want %s (the host's lock reached the box)", k, got[k], v)
				}
			}
			// Leases stall every other opener of the file: refused.
			if got["lease"] == "0" {
				t.Errorf("the box took a lease on %s", tc.box)
			}
		})
	}
}

// A lock one box holds on a system file must neither block another box nor
// the host.
func TestHostwideLocksBetweenBoxes(t *testing.T) {
	needJail(t)
	prog := systemProgram(t)
	marker := "59." + strconv.Itoa(os.Getpid())
	locks := cProg(t, "locks")
	ctx, cancel := context.WithCancel(t.Context())
	a := make(chan jail.Result, 1)
	go func() {
		res, _ := testJail.Run(ctx, jail.Spec{
			Argv:  []string{"./locks", "hold", prog, "/bin/sleep", marker},
			Files: []jail.File{locks},
		})
		a <- res
	}()
	defer func() {
		cancel()
		<-a
	}()
	// Box A holds the lock once its sleep has the locked descriptor (the
	// host sees that in /proc/PID/fdinfo whatever file it is on).
	eventually(t, 20*time.Second, func() error {
		for _, p := range boxProcesses(t) {
			pid := strings.Fields(p)[0]
			cmd, _ := os.ReadFile("/proc/" + pid + "/cmdline")
			if !bytes.Contains(cmd, []byte(marker)) {
				continue
			}
			infos, _ := filepath.Glob("/proc/" + pid + "/fdinfo/*")
			for _, fi := range infos {
				if b, _ := os.ReadFile(fi); bytes.Contains(b, []byte("FLOCK")) {
					return nil
				}
			}
		}
		select {
		case res := <-a:
			a <- res
			t.Fatalf("box A ended before it held its lock: %s\n%s%s", res.Message, res.Stdout, res.Stderr)
		default:
		}
		return errors.New("box A never held its lock")
	})

	res := run(t, jail.Spec{Argv: []string{"./locks", "probe", prog}, Files: []jail.File{locks}})
	expectStatus(t, res, jail.StatusOK)
	if got := fields(t, res.Stdout)["flock_ex"]; got != "0" {
		t.Errorf("box B: flock: errno %s; box A's lock reached it", got)
	}
	f, err := os.Open(prog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Errorf("host: flock %s: %v; box A's lock reached the host", prog, err)
	}
}

// hostCachestat reports the page-cache state of a range of a host file.
func hostCachestat(t *testing.T, f *os.File, off, n uint64) unix.Cachestat_t {
	t.Helper()
	var cs unix.Cachestat_t
	err := unix.Cachestat(uint(f.Fd()), &unix.CachestatRange{Off: off, Len: n}, &cs, 0)
	if errors.Is(err, unix.ENOSYS) {
		t.Skip("requires cachestat (Linux 6.5) on the host to see the page cache")
	}
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// A box must not learn which pages of a shared file are in the page cache:
// that tells whether (and what) someone else read lately.
func TestHostwideCacheResidency(t *testing.T) {
	j, dir := hostwideJail(t)
	const pages = 256
	page := os.Getpagesize()
	path := filepath.Join(dir, "resident")
	if err := os.WriteFile(path, bytes.Repeat([]byte("r"), pages*page), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Evict the whole file, then read its first page back without
	// readahead: a box that could see residency would find a few pages
	// cached and the rest not.
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadAt(make([]byte, 1), 0); err != nil {
		t.Fatal(err)
	}
	if cs := hostCachestat(t, f, 0, 0); cs.Cache == 0 || cs.Cache >= pages {
		t.Skipf("cannot set up partial residency on the host's %s (%d of %d pages cached): tmpfs?", dir, cs.Cache, pages)
	}

	res := runIn(t, j, jail.Spec{Argv: []string{"./residency", hostwideDir + "/resident", strconv.Itoa(pages)}, Files: []jail.File{cProg(t, "residency")}})
	expectStatus(t, res, jail.StatusOK)
	got := fields(t, res.Stdout)
	// mincore is allowed: for a file the box may not write it reports
	// every page as resident (Linux 5.0+), which reveals nothing.
	if got["mincore"] != "0" || got["mincore_resident"] != strconv.Itoa(pages) {
		t.Errorf("mincore: errno %s, %s of %d pages resident; want all (nothing revealed)", got["mincore"], got["mincore_resident"], pages)
	}
	if got["cachestat"] != eperm {
		t.Errorf("cachestat: errno %s (%s pages cached), want EPERM", got["cachestat"], got["cachestat_cached"])
	}
	if got["preadv2_nowait"] != eperm || got["preadv2_nowait_uncached"] != "0" {
		t.Errorf("preadv2(RWF_NOWAIT): errno %s, %s pages not cached; want EPERM and nothing revealed", got["preadv2_nowait"], got["preadv2_nowait_uncached"])
	}
}

// A box must not make the host write back or drop data that is not the
// box's: each operation runs on a host file with dirty pages, which must
// stay dirty (and cached). sync and syncfs are no-ops in the policy;
// fsync, fdatasync and sync_file_range reach only the box's overlay, which
// never syncs a lower layer; fadvise is a no-op. msync(MS_SYNC) never
// reached the host (mmap drops VM_SHARED for a file not open for
// writing); it stays in the table to keep it so.
func TestHostwideWriteback(t *testing.T) {
	j, dir := hostwideJail(t)
	const pages = 256
	data := bytes.Repeat([]byte("d"), pages*os.Getpagesize())
	for _, op := range []string{"sync", "syncfs", "fsync", "fdatasync", "sync_file_range", "msync", "fadvise"} {
		t.Run(op, func(t *testing.T) {
			name := "dirty-" + op
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			before := hostCachestat(t, f, 0, 0)
			if before.Dirty < pages/2 {
				t.Skipf("the host's %s keeps no dirty pages (%d): tmpfs?", dir, before.Dirty)
			}
			res := runIn(t, j, jail.Spec{Argv: []string{"./flush", op, hostwideDir + "/" + name}, Files: []jail.File{cProg(t, "flush")}})
			expectStatus(t, res, jail.StatusOK)
			if got := fields(t, res.Stdout)[op]; got != "0" {
				t.Errorf("%s: errno %s; toolchains expect it to succeed", op, got)
			}
			after := hostCachestat(t, f, 0, 0)
			if after.Dirty+after.Writeback < before.Dirty || after.Cache < before.Cache {
				t.Errorf("%s from the box reached the host's page cache: dirty %d → %d (writeback %d), cached %d → %d",
					op, before.Dirty, after.Dirty, after.Writeback, before.Cache, after.Cache)
			}
		})
	}
}

// The calls the policy refuses or neutralises, one by one from inside.
func TestHostwideSyscalls(t *testing.T) {
	res := run(t, jail.Spec{Argv: []string{"./hostwide"}, Files: []jail.File{cProg(t, "hostwide")}})
	expectStatus(t, res, jail.StatusOK)
	got := fields(t, res.Stdout)
	want := map[string]string{
		// Kernel AIO as on a kernel without it.
		"io_setup": enosys, "io_submit": enosys, "io_getevents": enosys, "io_destroy": enosys,
		// No-ops that succeed.
		"sync": "0", "syncfs": "0", "fadvise_dontneed": "0", "msync_sync": "0", "msync_async": "0",
		// Residency probes.
		"cachestat": eperm, "preadv2_nowait": eperm, "preadv2": "0",
		"fcntl_notify": eperm, "fcntl_setlease": eperm, "fcntl_getlease": "0",
		// TCP and UDP only.
		"socket_tcp": "0", "socket_tcp_proto": "0", "socket_udp6_proto": "0",
		"socket_mptcp": eperm, "socket_mptcp6": eperm, "socket_udplite": eperm, "socket_sctp": eperm,
		"socket_sctp_seqpacket": eperm, "socket_dccp": eperm, "socket_ping": eperm, "socket_ping6": eperm,
		"setsockopt_ulp": eperm, "setsockopt_nodelay": "0",
		"membarrier_global_expedited": eperm, "membarrier_query": "0",
		"quotactl_fd": eperm, "fanotify_init": eperm, "fanotify_mark": eperm, "add_key": eperm,
		"memfd_secret": eperm, "process_madvise": eperm, "set_mempolicy": eperm, "get_mempolicy": eperm,
		"set_mempolicy_home_node": eperm, "mbind": eperm, "migrate_pages": eperm, "move_pages": eperm,
		"userfaultfd": eperm, "name_to_handle_at": eperm,
		// Allowed calls the kernel itself refuses to a box.
		"sched_fifo": eperm, "sched_deadline": eperm, "ioprio_rt": eperm, "rlimit_rtprio": "0",
		// mlock of system files' pages pins the host's page cache: 64 KiB.
		"rlimit_memlock": "65536",
	}
	for name, w := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("%s: no result", name)
		} else if g != w {
			t.Errorf("%s: %s, want %s", name, g, w)
		}
	}
}

// The no-ops must look like success to the tools that call them.
func TestHostwideSyncToolsSucceed(t *testing.T) {
	res := run(t, jail.Spec{Argv: sh(`sync && sync -f /box && echo x > /box/f && sync -d /box/f && /usr/bin/python3 -c 'import os; os.sync(); fd = os.open("/box/f", os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.fsync(fd)' && echo synced`)})
	expectStatus(t, res, jail.StatusOK)
	if !strings.Contains(string(res.Stdout), "synced") {
		t.Fatalf("stdout %q", res.Stdout)
	}
}

// procKept are the /proc entries a box sees as they are (or, for stat,
// uptime and loadavg, in a form that shows nothing of the host's
// activity); every other top-level entry is masked.
var procKept = map[string]bool{
	"self": true, "thread-self": true, "mounts": true, "net": true, "sys": true, "sysvipc": true,
	"cpuinfo": true, "meminfo": true, "filesystems": true, "version": true,
	"stat": true, "uptime": true, "loadavg": true,
}

// procSysMasked are files under /proc/sys that identify the host or count
// its activity.
var procSysMasked = []string{
	"/proc/sys/kernel/random/boot_id", "/proc/sys/fs/dentry-state", "/proc/sys/fs/inode-nr",
	"/proc/sys/fs/inode-state", "/proc/sys/fs/file-nr", "/proc/sys/fs/aio-nr", "/proc/sys/kernel/pty/nr",
}

// /proc in a box shows nothing of the host's identity or activity, cannot
// be written, and its masks cannot be lifted.
func TestHostwideProc(t *testing.T) {
	needJail(t)
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var masked []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err == nil || procKept[e.Name()] {
			continue
		}
		masked = append(masked, "/proc/"+e.Name())
	}
	for _, p := range procSysMasked {
		if _, err := os.Stat(p); err == nil {
			masked = append(masked, p)
		}
	}
	for _, must := range []string{"/proc/cmdline", "/proc/sys/kernel/random/boot_id"} {
		found := false
		for _, p := range masked {
			found = found || p == must
		}
		if !found {
			t.Fatalf("%s is not in the list to check", must)
		}
	}
	res := run(t, jail.Spec{Argv: append([]string{"/usr/bin/python3", "./procpeek.py"}, masked...), Files: []jail.File{script(t, "procpeek.py")}})
	expectStatus(t, res, jail.StatusOK)
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(res.Stdout)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("line %q", line)
		}
		what, p, v := f[0], f[1], f[2]
		switch what {
		case "read":
			// Empty, or not readable at all (entries only the host's
			// root may open are left unmasked).
			seen++
			if n, err := strconv.Atoi(v); err != nil || n > 0 {
				t.Errorf("%s reads %s bytes (or entries), want nothing", p, v)
			}
		case "write":
			if v == "0" {
				t.Errorf("%s opens for writing", p)
			}
		case "umount":
			if v != eperm {
				t.Errorf("umount %s: errno %s, want EPERM", p, v)
			}
		}
	}
	if seen != len(masked) {
		t.Errorf("checked %d of %d paths:\n%s%s", seen, len(masked), res.Stdout, res.Stderr)
	}

	// What is kept still works, and shows no host activity.
	res = run(t, jail.Spec{Argv: sh(`
head -c 100 /proc/meminfo | grep -q MemTotal && echo meminfo ok
grep -q processor /proc/cpuinfo && echo cpuinfo ok
grep -q Uid /proc/self/status && echo self ok
echo loadavg $(cat /proc/loadavg)
echo stat_cpus $(grep -c '^cpu[0-9]* 0 0 0 0 0 0 0 0 0 0$' /proc/stat) $(grep -c '^cpu' /proc/stat)
echo stat_btime $(grep -c '^btime [0-9]' /proc/stat)
echo uptime_idle $(cut -d' ' -f2 /proc/uptime)
echo sys $(grep ' /proc/sys ' /proc/self/mountinfo | cut -d' ' -f6 | cut -d, -f1)
/usr/bin/python3 -c 'import os; print("python", os.cpu_count(), os.getloadavg())'
`)})
	expectStatus(t, res, jail.StatusOK)
	out := string(res.Stdout)
	for _, want := range []string{"meminfo ok", "cpuinfo ok", "self ok", "loadavg 0.00 0.00 0.00 ", "stat_btime 1", "uptime_idle 0.00", "sys ro", "python "} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s%s", want, out, res.Stderr)
		}
	}
	got := fields(t, res.Stdout)
	if f := strings.Fields(got["stat_cpus"]); len(f) != 2 || f[0] != f[1] || f[0] == "0" {
		t.Errorf("/proc/stat: %q cpu lines zeroed of all; want all, at least one", got["stat_cpus"])
	}
	if f := strings.Fields(got["python"]); len(f) < 1 || f[0] == "None" || f[0] == "0" {
		t.Errorf("python sees no CPUs: %q", got["python"])
	}
}
