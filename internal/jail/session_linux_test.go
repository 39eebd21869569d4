package jail_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/jail"
	"github.com/runbox-dev/runbox/internal/jail/boxinit"
)

// openSession opens a session on the shared jail, closed when the test ends.
func openSession(t *testing.T, spec jail.SessionSpec) *jail.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := needJail(t).OpenSession(ctx, spec)
	if err != nil {
		t.Fatalf("open session: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// execIn runs a command in a session and fails the test on a service error.
func execIn(t *testing.T, s *jail.Session, cmd jail.CommandSpec) jail.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := s.Exec(ctx, cmd)
	if err != nil {
		t.Fatalf("exec %q: %v (%s)", cmd.Argv, err, res.Message)
	}
	return res
}

// alive checks that the session still runs commands.
func alive(t *testing.T, s *jail.Session) {
	t.Helper()
	res := execIn(t, s, jail.CommandSpec{Argv: sh("echo alive")})
	expectStatus(t, res, jail.StatusOK)
	if string(res.Stdout) != "alive\n" {
		t.Fatalf("next command: %q", res.Stdout)
	}
}

// leftovers lists the processes a command sees in its box besides init
// and itself (its shell and the cats that read the names).
func leftovers(t *testing.T, s *jail.Session) []string {
	t.Helper()
	res := execIn(t, s, jail.CommandSpec{Argv: sh("for p in /proc/[0-9]*; do echo ${p#/proc/} $(cat $p/comm 2>/dev/null); done")})
	expectStatus(t, res, jail.StatusOK)
	var left []string
	for _, line := range strings.Split(strings.TrimSpace(string(res.Stdout)), "\n") {
		pid, comm, _ := strings.Cut(line, " ")
		// The next command's first stage waits (named by its descriptor
		// number for the instant before it names itself).
		_, numeric := strconv.Atoi(comm)
		if pid != "1" && comm != "sh" && comm != "cat" && comm != boxinit.StageName && numeric != nil && comm != "" {
			left = append(left, line)
		}
	}
	return left
}

func TestSessionStateAcrossCommands(t *testing.T) {
	s := openSession(t, jail.SessionSpec{
		Files: []jail.File{{Name: "a.txt", Data: []byte("hello\n")}},
		Env:   []string{"GREETING=hi"},
	})
	res := execIn(t, s, jail.CommandSpec{Argv: sh("cat a.txt; echo $GREETING $EXTRA; echo one > b.txt; mkdir -p d; echo two > /tmp/c; id -u; pwd"),
		Env: []string{"EXTRA=there"}})
	expectStatus(t, res, jail.StatusOK)
	if want := "hello\nhi there\n1000\n/box\n"; string(res.Stdout) != want {
		t.Fatalf("first command: %q, want %q", res.Stdout, want)
	}
	res = execIn(t, s, jail.CommandSpec{Argv: sh("cat /box/b.txt /tmp/c; pwd; echo $GREETING; exit 3"), Dir: "/box/d"})
	expectStatus(t, res, jail.StatusRuntimeError)
	if want := "one\ntwo\n/box/d\nhi\n"; string(res.Stdout) != want || res.ExitCode != 3 {
		t.Fatalf("second command: %q exit %d, want %q exit 3", res.Stdout, res.ExitCode, want)
	}
	res = execIn(t, s, jail.CommandSpec{Argv: []string{"no-such-command"}})
	expectStatus(t, res, jail.StatusRuntimeError)
	if res.ExitCode != 127 {
		t.Fatalf("missing command: exit %d, want 127", res.ExitCode)
	}
	res = execIn(t, s, jail.CommandSpec{Argv: []string{"cat"}, Stdin: strings.NewReader("from stdin")})
	expectStatus(t, res, jail.StatusOK)
	if string(res.Stdout) != "from stdin" {
		t.Fatalf("stdin: %q", res.Stdout)
	}
	if res.Memory <= 0 || res.WallTime <= 0 {
		t.Fatalf("no usage: memory %d wall %v", res.Memory, res.WallTime)
	}
}

// A limit of one command ends that command and what it started, with the
// command's own status; the session and its next command go on.
func TestSessionCommandLimitsSpareTheSession(t *testing.T) {
	s := openSession(t, jail.SessionSpec{
		Files:  []jail.File{script(t, "forkbomb.sh"), cProg(t, "membomb"), script(t, "tmpfsfill.sh")},
		Limits: jail.Limits{Memory: 96 << 20, Processes: 32, Disk: 16 << 20},
	})
	cases := []struct {
		name   string
		cmd    jail.CommandSpec
		status []jail.Status
	}{
		{"memory bomb", jail.CommandSpec{Argv: []string{"./membomb"}}, []jail.Status{jail.StatusMemoryLimit}},
		// A shell fork bomb may burn out (every fork fails, the shells
		// exit) before the clock runs out.
		{"fork bomb", jail.CommandSpec{Argv: []string{"/bin/sh", "forkbomb.sh"}, WallTime: 2 * time.Second},
			[]jail.Status{jail.StatusTimeLimit, jail.StatusOK, jail.StatusRuntimeError}},
		// head fails on ENOSPC; the script goes on.
		{"disk fill", jail.CommandSpec{Argv: sh("/bin/sh tmpfsfill.sh && df -k /box | tail -1")}, []jail.Status{jail.StatusOK}},
		{"wall clock, children included", jail.CommandSpec{Argv: sh("sleep 100 & sleep 100 & sleep 100"), WallTime: 300 * time.Millisecond},
			[]jail.Status{jail.StatusTimeLimit}},
		{"CPU time, children included", jail.CommandSpec{Argv: sh("while :; do :; done & while :; do :; done"),
			CPUTime: 400 * time.Millisecond, WallTime: 20 * time.Second}, []jail.Status{jail.StatusTimeLimit}},
		{"output", jail.CommandSpec{Argv: sh("yes"), Output: 1000}, []jail.Status{jail.StatusOutputLimit}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := execIn(t, s, tc.cmd)
			if !slices.Contains(tc.status, res.Status) {
				t.Fatalf("status %s (%s), want one of %v\nstdout %.500s\nstderr %.500s", res.Status, res.Message, tc.status, res.Stdout, res.Stderr)
			}
			switch tc.name {
			case "memory bomb":
				if res.Memory > 97<<20 {
					t.Errorf("session peak %d above its limit", res.Memory)
				}
			case "CPU time, children included":
				if !strings.Contains(res.Message, "CPU") || res.CPUTime < 400*time.Millisecond {
					t.Errorf("message %q, CPU %v", res.Message, res.CPUTime)
				}
				// Two spinning processes: the command's CPU time is theirs
				// together, more than its wall time.
				if res.CPUTime < res.WallTime*3/2 && runtimeCPUs() > 1 {
					t.Errorf("CPU %v over wall %v: the children's time is not counted", res.CPUTime, res.WallTime)
				}
			case "wall clock, children included":
				if !strings.Contains(res.Message, "wall") {
					t.Errorf("message %q", res.Message)
				}
			}
			alive(t, s)
			// Nothing of the command is left in the box.
			if left := leftovers(t, s); len(left) != 0 {
				t.Fatalf("processes left in the box after the command: %v", left)
			}
		})
	}
	// The disk fill's file stays (the session keeps its files) and is the
	// box's to remove.
	res := execIn(t, s, jail.CommandSpec{Argv: sh("rm /box/fill && echo removed")})
	expectStatus(t, res, jail.StatusOK)
}

func runtimeCPUs() int {
	n := 0
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		n = strings.Count(string(b), "\nprocessor")
		if strings.HasPrefix(string(b), "processor") {
			n++
		}
	}
	return n
}

func TestSessionConcurrentCommands(t *testing.T) {
	s := openSession(t, jail.SessionSpec{})
	start := time.Now()
	var wg sync.WaitGroup
	results := make([]jail.Result, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := s.Exec(t.Context(), jail.CommandSpec{Argv: sh(fmt.Sprintf("sleep 0.5; echo %d", i))})
			if err != nil {
				t.Errorf("command %d: %v", i, err)
			}
			results[i] = res
		}()
	}
	wg.Wait()
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("4 commands of 0.5 s took %v: not concurrent", d)
	}
	for i, res := range results {
		if res.Status != jail.StatusOK || string(res.Stdout) != fmt.Sprintf("%d\n", i) {
			t.Errorf("command %d: %s %q", i, res.Status, res.Stdout)
		}
	}
	// One command killed by its limit while another runs: the other ends
	// well.
	slow := make(chan jail.Result, 1)
	go func() {
		res, _ := s.Exec(t.Context(), jail.CommandSpec{Argv: sh("sleep 0.6; echo slow")})
		slow <- res
	}()
	res := execIn(t, s, jail.CommandSpec{Argv: sh("sleep 10"), WallTime: 200 * time.Millisecond})
	expectStatus(t, res, jail.StatusTimeLimit)
	res = <-slow
	expectStatus(t, res, jail.StatusOK)
	if string(res.Stdout) != "slow\n" {
		t.Fatalf("the other command: %q", res.Stdout)
	}
}

// Cancelling a command's context kills the command, not the session.
func TestSessionCancelKillsTheCommand(t *testing.T) {
	s := openSession(t, jail.SessionSpec{})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := s.Exec(ctx, jail.CommandSpec{Argv: sh("sleep 60")}); err == nil {
		t.Fatal("a cancelled command reported no error")
	}
	alive(t, s)
}

// Two sessions meet through nothing: processes, files, abstract sockets.
func TestSessionsCannotSeeEachOther(t *testing.T) {
	a := openSession(t, jail.SessionSpec{})
	b := openSession(t, jail.SessionSpec{})
	res := execIn(t, a, jail.CommandSpec{Argv: sh("echo a > /box/a-was-here; echo a > /tmp/a-was-here")})
	expectStatus(t, res, jail.StatusOK)
	// A listener in a, running while b looks.
	listening := make(chan jail.Result, 1)
	go func() {
		res, _ := a.Exec(t.Context(), jail.CommandSpec{Argv: []string{"/usr/bin/python3", "-c", `
import socket, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\0runbox-session-rendezvous")
s.listen(1)
open("/box/listening", "w").close()
time.sleep(3)
`}, WallTime: 10 * time.Second})
		listening <- res
	}()
	eventually(t, 10*time.Second, func() error {
		if _, err := a.ReadFile(t.Context(), "/box/listening", 10); err != nil {
			return err
		}
		return nil
	})
	res = execIn(t, b, jail.CommandSpec{Argv: []string{"/usr/bin/python3", "-c", `
import os, socket
print("procs", sum(1 for p in os.listdir("/proc") if p.isdigit() and "python" in open("/proc/%s/cmdline" % p).read() and int(p) != os.getpid()))
print("file", os.path.exists("/box/a-was-here") or os.path.exists("/tmp/a-was-here"))
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect("\0runbox-session-rendezvous")
    print("abstract connected")
except OSError as e:
    print("abstract", e.errno)
`}})
	expectStatus(t, res, jail.StatusOK)
	got := fields(t, res.Stdout)
	if got["procs"] != "0" || got["file"] != "False" || got["abstract"] != "111" {
		t.Errorf("session b met session a:\n%s", res.Stdout)
	}
	if _, err := b.ReadFile(t.Context(), "/box/a-was-here", 10); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("b's view of a's file: %v", err)
	}
	expectStatus(t, <-listening, jail.StatusOK)
}

// The attacks from inside of the one-shot suite, by a command in a session:
// identity and capabilities, seccomp, the read-only system, the /proc view,
// loopback-only network, and the escapes (leaked descriptors — the control
// channel among them —, ptrace, init's /proc entries, signals to init).
func TestSessionIsolation(t *testing.T) {
	s := openSession(t, jail.SessionSpec{Files: []jail.File{cProg(t, "escape"), cProg(t, "sockets"), cProg(t, "denied_syscalls")}})
	res := execIn(t, s, jail.CommandSpec{Argv: sh("cat /proc/self/status; id -u; id -G; ls /proc/self/fd | wc -l")})
	expectStatus(t, res, jail.StatusOK)
	out := string(res.Stdout)
	for _, want := range []string{
		"Uid:\t1000\t1000\t1000\t1000", "Gid:\t1000\t1000\t1000\t1000",
		"CapInh:\t0000000000000000", "CapPrm:\t0000000000000000", "CapEff:\t0000000000000000",
		"CapBnd:\t0000000000000000", "CapAmb:\t0000000000000000",
		"NoNewPrivs:\t1", "Seccomp:\t2", "\n1000\n1000\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}

	res = execIn(t, s, jail.CommandSpec{Argv: []string{"./escape"}})
	expectStatus(t, res, jail.StatusOK)
	got := fields(t, res.Stdout)
	for name, ok := range map[string][]string{
		"leaked_fds": {"0"}, "tiocsti": {eperm}, "ptrace_attach_child": {eperm}, "ptrace_attach_init": {eperm},
		"write_init_exe": {eacces}, "write_init_mem": {eacces}, "read_init_environ": {eacces},
		"write_init_root": {eacces}, "readlink_init_exe": {eacces}, "kill_init": {eperm},
	} {
		if !slices.Contains(ok, got[name]) {
			t.Errorf("%s: %q, want one of %v", name, got[name], ok)
		}
	}
	// init's descriptors, the control channel among them, are not the
	// command's to list; signals to init fail and change nothing.
	// The next command's first stage, waiting as the box's user, is not
	// dumpable either: its memory and descriptors (its socket from init)
	// are not another command's to open.
	// The next spare stage is made once a command has ended: another
	// command, ending while this one looks, has one made.
	other := make(chan jail.Result, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		other <- execIn(t, s, jail.CommandSpec{Argv: []string{"true"}})
	}()
	res = execIn(t, s, jail.CommandSpec{Argv: sh(`ls /proc/1/fd >/dev/null 2>&1 && echo "init fds listed"; kill -9 1 2>/dev/null && echo "init signalled"; kill -STOP 1 2>/dev/null && echo "init stopped"
for i in $(seq 100); do for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = runbox-stage ] && found=$p; done; [ -n "$found" ] && break; sleep 0.05; done
[ -n "$found" ] && echo stage && (cat $found/mem; ls $found/fd) 2>/dev/null && echo "$found open"
ls -l /proc/[0-9]*/fd/ 2>/dev/null | grep -c socket`)})
	<-other
	if out := string(res.Stdout); strings.Contains(out, "init ") || strings.Contains(out, "open") || !strings.HasSuffix(out, "\n0\n") || !strings.Contains(out, "stage") {
		t.Errorf("a command reached init, a first stage or a socket:\n%s%s", res.Stdout, res.Stderr)
	}
	alive(t, s)

	res = execIn(t, s, jail.CommandSpec{Argv: []string{"./denied_syscalls"}})
	expectStatus(t, res, jail.StatusOK)
	for name, v := range fields(t, res.Stdout) {
		if v != eperm && v != enosys {
			t.Errorf("syscall %s: errno %s, want EPERM or ENOSYS", name, v)
		}
	}

	res = execIn(t, s, jail.CommandSpec{Argv: sh(`for p in /usr/x /etc/x /x /proc/x; do (echo x > $p) 2>/dev/null && echo "write $p ok"; done
for p in /etc/shadow /root /home /var /work /sys /run; do [ -e $p ] && echo "exists $p"; done
mount -t tmpfs none /box 2>/dev/null && echo "mount ok"
echo procs $(ls -d /proc/[0-9]* | wc -l); echo cgroup $(cut -d: -f3 /proc/self/cgroup | sort -u); echo hostname $(hostname)
cat /proc/cmdline | wc -c`)})
	expectStatus(t, res, jail.StatusOK)
	out = string(res.Stdout)
	if strings.Contains(out, " ok") || strings.Contains(out, "exists") {
		t.Errorf("write, mount or host path inside the session:\n%s", out)
	}
	got = fields(t, res.Stdout)
	// init, the waiting first stage, sh, ls and wc's shell at most.
	if n, _ := strconv.Atoi(got["procs"]); n < 2 || n > 6 {
		t.Errorf("/proc shows %s processes", got["procs"])
	}
	// A command is in its own group below the box's, whose namespace
	// root it sees as "/": its own group shows as /cmd-N, never the
	// host's path.
	if !strings.HasPrefix(got["cgroup"], "/ /cmd-") || strings.Contains(out, "runbox-") || got["hostname"] != "runbox" || !strings.HasSuffix(out, "\n0\n") {
		t.Errorf("/proc view of a command:\n%s", out)
	}

	res = execIn(t, s, jail.CommandSpec{Argv: []string{"./sockets", "1"}})
	expectStatus(t, res, jail.StatusOK)
	got = fields(t, res.Stdout)
	for _, name := range []string{"raw_inet", "packet", "vsock", "alg", "lo_down"} {
		if got[name] != eperm {
			t.Errorf("%s: errno %q, want EPERM", name, got[name])
		}
	}
	if got["tcp"] != "0" {
		t.Errorf("an ordinary TCP socket failed: %q", got["tcp"])
	}
}

// A daemon a command leaves behind dies with the command; a command still
// running dies with the session; a closed session leaves no process,
// cgroup or mount.
func TestSessionCloseLeavesNothing(t *testing.T) {
	needJail(t)
	before := snapshot(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s, err := testJail.OpenSession(ctx, jail.SessionSpec{Files: []jail.File{script(t, "daemonize.sh")}})
	if err != nil {
		t.Fatal(err)
	}
	marker := fmt.Sprintf("%d.%d", 50+os.Getpid()%40, os.Getpid())
	res := execIn(t, s, jail.CommandSpec{Argv: []string{"/bin/sh", "daemonize.sh", marker}, WallTime: 30 * time.Second})
	expectStatus(t, res, jail.StatusOK)
	// Only init and the session's own commands' processes: the daemon is gone.
	if left := leftovers(t, s); len(left) != 0 {
		t.Fatalf("processes left after a daemonizing command: %v", left)
	}
	running := make(chan error, 1)
	go func() {
		_, err := s.Exec(t.Context(), jail.CommandSpec{Argv: sh("sleep 60 & sleep 60"), WallTime: time.Minute})
		running <- err
	}()
	eventually(t, 10*time.Second, func() error {
		if len(boxProcesses(t)) < 3 {
			return errors.New("command not running yet")
		}
		return nil
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-running; err == nil {
		t.Error("a command cut by Close reported no error")
	}
	s.Close() // idempotent
	if _, err := s.Exec(t.Context(), jail.CommandSpec{Argv: sh("true")}); !errors.Is(err, jail.ErrSessionClosed) {
		t.Errorf("exec after close: %v", err)
	}
	if _, err := s.ReadFile(t.Context(), "x", 1); !errors.Is(err, jail.ErrSessionClosed) {
		t.Errorf("read after close: %v", err)
	}
	if after := snapshot(t); after != before {
		t.Fatalf("host state changed:\nbefore %+v\nafter  %+v", before, after)
	}
}

// Many commands in one session, and many sessions, leave the host as it
// was.
func TestSessionSoakLeavesNothing(t *testing.T) {
	needJail(t)
	before := snapshot(t)
	func() {
		s := openSession(t, jail.SessionSpec{})
		for i := range 200 {
			res := execIn(t, s, jail.CommandSpec{Argv: []string{"/bin/true"}})
			if res.Status != jail.StatusOK {
				t.Fatalf("command %d: %s %s", i, res.Status, res.Message)
			}
			if i%20 == 0 {
				if err := s.WriteFile(t.Context(), "f"+strconv.Itoa(i), []byte("x"), 0); err != nil {
					t.Fatal(err)
				}
			}
		}
		s.Close()
		for range 20 {
			s := openSession(t, jail.SessionSpec{})
			alive(t, s)
			s.Close()
		}
	}()
	if after := snapshot(t); after != before {
		t.Fatalf("host state changed:\nbefore %+v\nafter  %+v", before, after)
	}
}

// A command may kill the next command's waiting first stage (it runs as
// the same uid): the next command gets a new one.
func TestSessionKilledStageIsReplaced(t *testing.T) {
	s := openSession(t, jail.SessionSpec{})
	for i := range 10 {
		pause := ""
		if i%2 == 0 {
			pause = "sleep 0.05;" // the next stage is made by then
		}
		res := execIn(t, s, jail.CommandSpec{Argv: sh(pause + ` n=0; for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = ` + boxinit.StageName + ` ] && kill -9 ${p#/proc/} && n=$((n+1)); done; echo killed $n`)})
		expectStatus(t, res, jail.StatusOK)
		alive(t, s)
	}
}
