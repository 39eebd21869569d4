package jail_test

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/jail"
)

const (
	eperm   = "1"
	enoent  = "2"
	eacces  = "13"
	enosys  = "38"
	erofs   = "30"
	etxtbsy = "26"
)

func TestIdentityAndPrivileges(t *testing.T) {
	res := run(t, jail.Spec{Argv: sh("cat /proc/self/status; echo setgroups $(cat /proc/self/setgroups); echo uid_map $(cat /proc/self/uid_map); id -u; id -G")})
	expectStatus(t, res, jail.StatusOK)
	out := string(res.Stdout)
	for _, want := range []string{
		"Uid:\t1000\t1000\t1000\t1000", "Gid:\t1000\t1000\t1000\t1000",
		"CapInh:\t0000000000000000", "CapPrm:\t0000000000000000", "CapEff:\t0000000000000000",
		"CapBnd:\t0000000000000000", "CapAmb:\t0000000000000000",
		"NoNewPrivs:\t1", "Seccomp:\t2", "setgroups deny", "\n1000\n1000\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	// Supplementary groups: none at all (the host's root group must not
	// come along).
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "Groups:") && strings.TrimSpace(strings.TrimPrefix(line, "Groups:")) != "" {
			t.Errorf("supplementary groups inside the box: %q", line)
		}
	}
	// The program's uid maps to a host uid inside the configured range.
	var in, host, n int
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "uid_map ") {
			f := strings.Fields(line)
			// uid_map 0 H 1 1000 H+1 1
			if len(f) != 7 {
				t.Fatalf("uid_map: %q", line)
			}
			in, _ = strconv.Atoi(f[4])
			host, _ = strconv.Atoi(f[5])
			n, _ = strconv.Atoi(f[6])
		}
	}
	if in != 1000 || n != 1 || host < testConfig.UIDBase || host >= testConfig.UIDBase+2*testConfig.UIDSlots {
		t.Errorf("program uid maps to host %d (size %d), outside the box range", host, n)
	}
}

func TestConcurrentBoxesGetDistinctHostUIDs(t *testing.T) {
	needJail(t)
	const boxes = 6
	maps := make([]string, boxes)
	var wg sync.WaitGroup
	for i := range boxes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := testJail.Run(t.Context(), jail.Spec{Argv: sh("cat /proc/self/uid_map; sleep 0.3")})
			if err != nil || res.Status != jail.StatusOK {
				t.Errorf("box %d: %v %s", i, err, res.Message)
				return
			}
			maps[i] = string(res.Stdout)
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, m := range maps {
		if seen[m] {
			t.Fatalf("two boxes running at once share a uid map:\n%s", m)
		}
		seen[m] = true
	}
}

func TestNamespacesDifferFromHost(t *testing.T) {
	kinds := []string{"user", "pid", "mnt", "net", "ipc", "uts", "cgroup"}
	cmd := ""
	for _, k := range kinds {
		cmd += fmt.Sprintf("echo %s $(readlink /proc/self/ns/%s);", k, k)
	}
	cmd += "echo procs $(ls -d /proc/[0-9]* | wc -l); echo hostname $(hostname)"
	res := run(t, jail.Spec{Argv: sh(cmd)})
	expectStatus(t, res, jail.StatusOK)
	got := fields(t, res.Stdout)
	for _, k := range kinds {
		host, err := os.Readlink("/proc/self/ns/" + k)
		if err != nil {
			t.Fatal(err)
		}
		if got[k] == "" || got[k] == host {
			t.Errorf("%s namespace: box %q, host %q", k, got[k], host)
		}
	}
	// init, sh, ls's subshell and wc at most: nothing of the host.
	if n, _ := strconv.Atoi(got["procs"]); n < 1 || n > 5 {
		t.Errorf("/proc shows %s processes", got["procs"])
	}
	if got["hostname"] != "runbox" {
		t.Errorf("hostname %q", got["hostname"])
	}
}

func TestReadOnlySystemAndHiddenHost(t *testing.T) {
	cmd := `
for p in /usr/x /etc/x /bin/x /x /lib/x /proc/x /dev/x; do
  if (echo x > $p) 2>/dev/null; then echo "write $p ok"; else echo "write $p refused"; fi
done
for p in /etc/shadow /root /home /var /work /srv /mnt /sys /opt /run /boot /etc/ssh /etc/machine-id; do
  if [ -e $p ]; then echo "exists $p"; fi
done
ln /usr/bin/sh /box/hardlink 2>/dev/null && echo "hardlink ok" || echo "hardlink refused"
touch /box/w /tmp/w /dev/shm/w && echo writable ok
mount -t tmpfs none /box 2>/dev/null && echo "mount ok" || echo "mount refused"
`
	res := run(t, jail.Spec{Argv: sh(cmd)})
	expectStatus(t, res, jail.StatusOK)
	out := string(res.Stdout)
	if strings.Contains(out, " ok\n") && !strings.Contains(out, "writable ok") || strings.Count(out, " ok") != 1 {
		t.Errorf("a write, link or mount outside /box, /tmp and /dev/shm succeeded:\n%s", out)
	}
	if strings.Contains(out, "exists") {
		t.Errorf("host paths visible inside the box:\n%s", out)
	}
	// The write errors themselves: EROFS, not a permission quirk.
	res = run(t, jail.Spec{Argv: []string{"/usr/bin/python3", "-c", `
import errno
for p in ["/usr/x", "/etc/passwd", "/bin/x", "/x"]:
    try:
        open(p, "w")
        print(p, 0)
    except OSError as e:
        print(p, e.errno)
`}})
	expectStatus(t, res, jail.StatusOK)
	for p, v := range fields(t, res.Stdout) {
		if v != erofs {
			t.Errorf("write %s: errno %s, want EROFS", p, v)
		}
	}
}

func TestDiskLimits(t *testing.T) {
	t.Run("fill /box and /tmp", func(t *testing.T) {
		res := run(t, jail.Spec{
			Argv:   sh(`for d in /box /tmp /dev/shm; do dd if=/dev/zero of=$d/fill bs=64k 2>&1 | grep -o "No space left on device" | head -1; done; echo done`),
			Limits: jail.Limits{Disk: 2 << 20, FileSize: 64 << 20},
		})
		expectStatus(t, res, jail.StatusOK)
		if got := strings.Count(string(res.Stdout), "No space left on device"); got != 3 {
			t.Fatalf("want ENOSPC on /box, /tmp and /dev/shm; got:\n%s", res.Stdout)
		}
	})
	t.Run("inode exhaustion", func(t *testing.T) {
		res := run(t, jail.Spec{
			Argv: []string{"/usr/bin/python3", "-c", `
import errno, os
n = 0
try:
    while True:
        open("/box/f%d" % n, "w").close()
        n += 1
except OSError as e:
    print("errno", e.errno, "after", n)
`},
			Limits: jail.Limits{Disk: 256 << 10},
		})
		expectStatus(t, res, jail.StatusOK)
		if !strings.HasPrefix(string(res.Stdout), "errno 28 ") {
			t.Fatalf("want ENOSPC from inode exhaustion, got %q", res.Stdout)
		}
	})
	t.Run("one file past the file size limit", func(t *testing.T) {
		res := run(t, jail.Spec{
			Argv:   sh("exec head -c 2000000 /dev/zero > /box/big"),
			Limits: jail.Limits{FileSize: 1 << 20},
		})
		expectStatus(t, res, jail.StatusSignaled)
		if jail.SignalName(res.Signal) != "SIGXFSZ" {
			t.Fatalf("signal %s, want SIGXFSZ", jail.SignalName(res.Signal))
		}
	})
}

func TestDeniedSyscallsFromC(t *testing.T) {
	res := run(t, jail.Spec{Argv: []string{"./denied_syscalls"}, Files: []jail.File{cProg(t, "denied_syscalls")}})
	expectStatus(t, res, jail.StatusOK)
	got := fields(t, res.Stdout)
	if len(got) < 45 {
		t.Fatalf("only %d results:\n%s", len(got), res.Stdout)
	}
	for name, errno := range got {
		want := eperm
		if name == "clone3" {
			want = enosys
		}
		if errno != want {
			t.Errorf("%s: errno %s, want %s", name, errno, want)
		}
	}
}

func TestNetworkIsLoopbackOnly(t *testing.T) {
	// A port the host really listens on: the box must not reach it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
			accepted <- struct{}{}
		}
	}()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	res := run(t, jail.Spec{Argv: []string{"./sockets", port}, Files: []jail.File{cProg(t, "sockets")}})
	expectStatus(t, res, jail.StatusOK)
	got := fields(t, res.Stdout)
	for _, name := range []string{"raw_inet", "raw_inet6", "raw_cloexec", "packet", "sock_packet", "vsock", "alg", "netlink_audit", "lo_down", "netlink_newaddr"} {
		if got[name] != eperm {
			t.Errorf("%s: errno %q, want EPERM", name, got[name])
		}
	}
	if got["tcp"] != "0" {
		t.Errorf("an ordinary TCP socket failed: %q", got["tcp"])
	}
	if got["connect_host_port"] != "111" { // ECONNREFUSED: the box's own loopback
		t.Errorf("connect to the host's 127.0.0.1:%s: errno %q, want ECONNREFUSED", port, got["connect_host_port"])
	}
	select {
	case <-accepted:
		t.Error("the host listener accepted a connection from the box")
	default:
	}

	res = run(t, jail.Spec{Argv: sh("cat /proc/net/dev; echo ROUTES; cat /proc/net/route; echo ROUTES6; cat /proc/net/ipv6_route")})
	expectStatus(t, res, jail.StatusOK)
	out := string(res.Stdout)
	devs, routes, _ := strings.Cut(out, "ROUTES\n")
	for _, line := range strings.Split(devs, "\n")[2:] {
		if name, _, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && name != "lo" {
			t.Errorf("interface %q inside the box", name)
		}
	}
	v4, v6, _ := strings.Cut(routes, "ROUTES6\n")
	if n := len(strings.Split(strings.TrimSpace(v4), "\n")); n != 1 {
		t.Errorf("IPv4 routes inside the box:\n%s", v4)
	}
	for _, line := range strings.Split(strings.TrimSpace(v6), "\n") {
		if line != "" && !strings.HasSuffix(line, " lo") {
			t.Errorf("IPv6 route off loopback: %q", line)
		}
	}
}

func TestEscapesFromInside(t *testing.T) {
	res := run(t, jail.Spec{Argv: []string{"./escape"}, Files: []jail.File{cProg(t, "escape")}})
	expectStatus(t, res, jail.StatusOK)
	got := fields(t, res.Stdout)
	want := map[string][]string{
		"leaked_fds":          {"0"},
		"tiocsti":             {eperm},
		"ptrace_attach_child": {eperm},
		"ptrace_attach_init":  {eperm},
		// The program's own binary is on a read-only mount (and busy).
		"write_self_exe": {etxtbsy, erofs, eacces},
		// Init is not dumpable: its /proc entries belong to root and
		// refuse the program outright.
		"write_init_exe":    {eacces},
		"write_init_mem":    {eacces},
		"read_init_environ": {eacces},
		"write_init_root":   {eacces},
		"readlink_init_exe": {eacces},
		// Init runs as the box's root, another uid: no permission. (Even
		// with it, the kernel ignores SIGKILL sent to a namespace's init
		// from inside.)
		"kill_init": {eperm},
	}
	for name, ok := range want {
		v, present := got[name]
		if !present {
			t.Errorf("%s: no result", name)
			continue
		}
		match := false
		for _, w := range ok {
			match = match || v == w
		}
		if !match {
			t.Errorf("%s: %s, want one of %v", name, v, ok)
		}
	}
}

func TestSetuidBinaryGivesNoPrivilege(t *testing.T) {
	// su is setuid root on the host. Inside, the mount is nosuid and
	// no_new_privs is set: it starts as uid 1000 and stays there. Read its
	// credentials while it waits for a password.
	if _, err := os.Stat("/usr/bin/su"); err != nil {
		t.Skip("requires /usr/bin/su")
	}
	res := run(t, jail.Spec{Argv: sh(`ls -l /usr/bin/su | cut -c1-10; (sleep 5 | /usr/bin/su -c true root >/dev/null 2>&1 &); sleep 0.3; for p in /proc/[0-9]*; do if [ "$(cat $p/comm)" = su ]; then grep -E "^(Uid|Gid|CapEff)" $p/status; fi; done`)})
	expectStatus(t, res, jail.StatusOK)
	out := string(res.Stdout)
	if !strings.HasPrefix(out, "-rwsr") {
		t.Skipf("su is not setuid here: %q", out)
	}
	if !strings.Contains(out, "Uid:\t1000\t1000\t1000\t1000") || !strings.Contains(out, "CapEff:\t0000000000000000") {
		t.Fatalf("setuid su gained something:\n%s", out)
	}
}

func TestKillAllKillsOnlyTheBox(t *testing.T) {
	needJail(t)
	// A host process of ours that kill -9 -1 from the box must not reach.
	victim := startSleeper(t)
	res := run(t, jail.Spec{Argv: sh("sleep 100 & kill -9 -1; echo survived")})
	expectStatus(t, res, jail.StatusOK)
	if !strings.Contains(string(res.Stdout), "survived") {
		t.Fatalf("the shell itself should survive kill -1: %q", res.Stdout)
	}
	if err := victim.Signal(syscallZero); err != nil {
		t.Fatalf("host process killed from inside the box: %v", err)
	}
}

func TestBoxesCannotSeeEachOther(t *testing.T) {
	needJail(t)
	marker := "sleep 3." + strconv.Itoa(os.Getpid())
	// Box A makes one of everything two boxes could meet through, then waits.
	a := make(chan jail.Result, 1)
	go func() {
		res, _ := testJail.Run(t.Context(), jail.Spec{Argv: []string{"/usr/bin/python3", "-c", `
import os, socket, subprocess, sys
open("/tmp/a-was-here", "w").write("x")
open("/dev/shm/a-shm", "w").write("x")
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\0runbox-test-rendezvous")
s.listen(1)
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print("shmget", libc.shmget(4242, 4096, 0o1666))
print("mq", libc.mq_open(b"/runbox-test-mq", 0o100 | 0o2, 0o666, None) if hasattr(libc, "mq_open") else "n/a")
sys.stdout.flush()
subprocess.run(sys.argv[1].split())
`, marker}})
		a <- res
	}()
	// Wait until A is in its sleep, as seen from the host.
	eventually(t, 10*time.Second, func() error {
		for _, p := range boxProcesses(t) {
			pid := strings.Fields(p)[0]
			if b, _ := os.ReadFile("/proc/" + pid + "/cmdline"); strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), marker) {
				return nil
			}
		}
		return fmt.Errorf("box A never reached its sleep")
	})
	res := run(t, jail.Spec{Argv: []string{"/usr/bin/python3", "-c", `
import ctypes, os, socket
print("procs", sum(1 for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid() and "sleep" in open("/proc/%s/cmdline" % p).read()))
print("file", os.path.exists("/tmp/a-was-here") or os.path.exists("/dev/shm/a-shm"))
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect("\0runbox-test-rendezvous")
    print("abstract connected")
except OSError as e:
    print("abstract", e.errno)
libc = ctypes.CDLL(None, use_errno=True)
print("shmget", libc.shmget(4242, 4096, 0o666))
print("mq", libc.mq_open(b"/runbox-test-mq", 2) if hasattr(libc, "mq_open") else -1)
`}})
	expectStatus(t, res, jail.StatusOK)
	got := fields(t, res.Stdout)
	if got["procs"] != "0" || got["file"] != "False" || got["abstract"] != "111" || got["shmget"] != "-1" || got["mq"] != "-1" {
		t.Errorf("box B met box A:\n%s", res.Stdout)
	}
	resA := <-a
	expectStatus(t, resA, jail.StatusOK)
	gotA := fields(t, resA.Stdout)
	for _, k := range []string{"shmget", "mq"} {
		if v, err := strconv.Atoi(gotA[k]); err != nil || v < 0 {
			t.Errorf("box A could not make its %s object, so the test proves nothing:\n%s%s", k, resA.Stdout, resA.Stderr)
		}
	}
}
