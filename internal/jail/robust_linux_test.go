package jail_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/cgroup"
	"github.com/runbox-dev/runbox/internal/jail"
)

// The tests below try, from inside a box or through the jail's API, to wedge
// the supervisor, to make runbox report its own failure for what the
// request or the program did, to lose collected files without saying so,
// and to reach kernel counts the host and other boxes share.

// watcher is a live copy of a box's stdout (Spec.StdoutTee) that says when a
// line has appeared.
type watcher struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	line string
	seen chan struct{}
}

func (w *watcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.seen != nil && strings.Contains("\n"+w.buf.String(), "\n"+w.line+"\n") {
		close(w.seen)
		w.seen = nil
	}
	return len(p), nil
}

func (w *watcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// holdBox starts spec and returns once its program has printed the line
// marker, with what it printed so far; stop kills the box and returns its
// Result.
func holdBox(t *testing.T, spec jail.Spec, marker string) (out string, stop func() jail.Result) {
	t.Helper()
	j := needJail(t)
	w := &watcher{line: marker, seen: make(chan struct{})}
	seen := w.seen
	spec.StdoutTee = w
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan jail.Result, 1)
	go func() {
		res, _ := j.Run(ctx, spec)
		done <- res
	}()
	stop = func() jail.Result {
		cancel()
		return <-done
	}
	select {
	case <-seen:
		return w.String(), stop
	case res := <-done:
		cancel()
		t.Fatalf("box ended before printing %q: %s %s\nstdout: %s\nstderr: %s", marker, res.Status, res.Message, res.Stdout, res.Stderr)
	case <-time.After(60 * time.Second):
		stop()
		t.Fatalf("box never printed %q; stdout so far:\n%s", marker, w.String())
	}
	return "", nil
}

// TestRobustCollectLongNames: names near PATH_MAX make a tar header several
// times the size of a plain one. A stream the host did not expect must
// neither wedge the run past its bounds nor lose files silently.
func TestRobustCollectLongNames(t *testing.T) {
	needJail(t)
	t.Run("4000-byte paths come back as truncated, within the collection's time", func(t *testing.T) {
		// 100 files of 165,000 bytes fill the default 16 MiB byte bound;
		// their ~5 KiB headers do not fit in a bound that counts 2 KiB per
		// header, and the stream was cut inside a file's data.
		spec := jail.Spec{
			Argv:    []string{"/usr/bin/python3", "longnames.py", "15", "100", "165000"},
			Files:   []jail.File{script(t, "longnames.py")},
			Collect: &jail.Collect{Patterns: []string{"**"}, MaxTime: 2 * time.Second},
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		res, err := testJail.Run(ctx, spec)
		if err != nil {
			t.Fatalf("run: %v (after %v)", err, time.Since(start))
		}
		expectStatus(t, res, jail.StatusOK)
		if !res.FilesTruncated {
			t.Errorf("%d files back and not truncated", len(res.Files))
		}
		// The program's own run, the collection's 2 s and the slack the
		// host allows on top.
		if el := time.Since(start); el > 15*time.Second {
			t.Errorf("run took %v", el)
		}
	})
	t.Run("1000-byte paths filling the byte bound all come back", func(t *testing.T) {
		// 3 levels of 255-byte names, files of 160,000 bytes: 100 of them
		// are just under the default 16 MiB, with ~2.5 KiB of header each.
		res := run(t, jail.Spec{
			Argv:    []string{"/usr/bin/python3", "longnames.py", "3", "100", "160000"},
			Files:   []jail.File{script(t, "longnames.py")},
			Collect: &jail.Collect{Patterns: []string{"**"}, MaxTime: 5 * time.Second},
		})
		expectStatus(t, res, jail.StatusOK)
		if len(res.Files) != 100 || res.FilesTruncated {
			t.Fatalf("%d files, truncated %v; want all 100", len(res.Files), res.FilesTruncated)
		}
		for _, f := range res.Files {
			if len(f.Data) != 160000 || len(f.Name) < 900 {
				t.Fatalf("file %.40q… (%d bytes of name): %d bytes", f.Name, len(f.Name), len(f.Data))
			}
		}
	})
}

// TestRobustCollectSilentLoss: a file the collection leaves out for any
// reason — a descriptor limit, a box at its memory limit, a bound — is
// reported as truncated, and a file returned is whole.
func TestRobustCollectSilentLoss(t *testing.T) {
	needJail(t)
	cases := []struct {
		name string
		lim  jail.Limits
		args []string
	}{
		// Eight descriptors, the least a box may have, and a directory
		// chain deeper than that.
		{"few descriptors, deep directories", jail.Limits{OpenFiles: 8}, []string{"1", "1", "12"}},
		// 27 MiB of files in a 40 MiB box, with init's binary and the
		// Go runtime's memory charged to it too: reading a 9 MiB file
		// whole into memory does not fit.
		{"box nearly full", jail.Limits{Memory: 40 << 20, Disk: 28 << 20}, []string{"3", "9", "12"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := run(t, jail.Spec{
				Argv:    append([]string{"/usr/bin/python3", "fullbox.py"}, tc.args...),
				Files:   []jail.File{script(t, "fullbox.py")},
				Limits:  tc.lim,
				Collect: &jail.Collect{Patterns: []string{"**"}, MaxFiles: 1000, MaxBytes: 64 << 20, MaxDepth: 32, MaxTime: 5 * time.Second},
			})
			expectStatus(t, res, jail.StatusOK)
			made := map[string]int{}
			for _, line := range strings.Split(string(res.Stdout), "\n") {
				if f := strings.Fields(line); len(f) == 3 && f[0] == "file" {
					made[f[1]], _ = strconv.Atoi(f[2])
				}
			}
			got := map[string]bool{}
			for _, f := range res.Files {
				got[f.Name] = true
				pat := []byte(f.Name + "\n")
				want := bytes.Repeat(pat, made[f.Name]/len(pat)+1)[:made[f.Name]]
				if !bytes.Equal(f.Data, want) {
					t.Errorf("%s: %d bytes returned, not the %d the program wrote", f.Name, len(f.Data), made[f.Name])
				}
			}
			var missing []string
			for name := range made {
				if !got[name] {
					missing = append(missing, name)
				}
			}
			if len(missing) > 0 && !res.FilesTruncated {
				t.Errorf("%d of %d files missing, not reported as truncated: %v", len(missing), len(made), missing)
			}
			t.Logf("%d of %d files back, truncated %v", len(res.Files), len(made), res.FilesTruncated)
		})
	}
}

// TestRobustCollectNamesExact: names that are not valid UTF-8 come back
// byte for byte (two of them would collide once converted).
func TestRobustCollectNamesExact(t *testing.T) {
	res := run(t, jail.Spec{
		Argv:    []string{"/usr/bin/python3", "-c", `open(b"a\xff", "w").write("1"); open(b"a\xfe", "w").write("2")`},
		Collect: &jail.Collect{Patterns: []string{"a*"}},
	})
	expectStatus(t, res, jail.StatusOK)
	got := map[string]string{}
	for _, f := range res.Files {
		got[f.Name] = string(f.Data)
	}
	if got["a\xff"] != "1" || got["a\xfe"] != "2" || res.FilesTruncated {
		t.Fatalf("files %q, truncated %v", got, res.FilesTruncated)
	}
}

// TestRobustArgsExact: arguments, environment and collection patterns that
// are not valid UTF-8 reach the box byte for byte (JSON turned every such
// byte into U+FFFD).
func TestRobustArgsExact(t *testing.T) {
	res := run(t, jail.Spec{
		Argv:    []string{"/bin/sh", "-c", `printf %s "$1" | od -An -tx1; printf %s "$X" | od -An -tx1; : > "$1"`, "sh", "a\xff\x01"},
		Env:     []string{"X=b\xfe"},
		Collect: &jail.Collect{Patterns: []string{"a\xff*"}},
	})
	expectStatus(t, res, jail.StatusOK)
	if got := strings.Fields(string(res.Stdout)); strings.Join(got, " ") != "61 ff 01 62 fe" {
		t.Errorf("the program saw %q", res.Stdout)
	}
	if len(res.Files) != 1 || res.Files[0].Name != "a\xff\x01" {
		t.Errorf("collected %q", names(res.Files))
	}
}

// TestRobustOOMSparesInit: when a box fills its memory with tmpfs pages
// (which belong to no process) the OOM killer picks the largest process of
// the box; it must never be runbox-init, and a box whose memory ran out is
// memory_limit, never internal_error.
func TestRobustOOMSparesInit(t *testing.T) {
	needJail(t)
	cases := []struct {
		name string
		spec jail.Spec
	}{
		{"tmpfs fill", jail.Spec{Argv: []string{"/bin/sh", "tmpfsfill.sh"}, Files: []jail.File{script(t, "tmpfsfill.sh")}}},
		{"tmpfs fill with small processes", jail.Spec{Argv: []string{"/bin/sh", "tmpfsfill.sh", "procs"}, Files: []jail.File{script(t, "tmpfsfill.sh")}}},
		{"C memory bomb", jail.Spec{Argv: []string{"./membomb"}, Files: []jail.File{cProg(t, "membomb")}}},
	}
	t.Run("the program's processes are the killer's first choice", func(t *testing.T) {
		out, stop := holdBox(t, jail.Spec{Argv: sh("cat /proc/self/oom_score_adj; (cat /proc/self/oom_score_adj); echo held; sleep 30"),
			Limits: jail.Limits{WallTime: time.Minute}}, "held")
		defer stop()
		if out != "1000\n1000\nheld\n" {
			t.Errorf("the program's oom_score_adj: %q", out)
		}
		// And runbox-init is never one, where the supervisor may say so.
		if !haveCap(t, 24) { // CAP_SYS_RESOURCE
			t.Log("no CAP_SYS_RESOURCE here: runbox-init's own oom_score_adj is not lowered")
			return
		}
		for _, p := range boxProcesses(t) {
			f := strings.Fields(p) // pid Uid: real effective saved fs
			if uid, _ := strconv.Atoi(f[2]); (uid-testConfig.UIDBase)%2 == 0 {
				b, _ := os.ReadFile("/proc/" + f[0] + "/oom_score_adj")
				if strings.TrimSpace(string(b)) != "-1000" {
					t.Errorf("runbox-init (pid %s) has oom_score_adj %q", f[0], b)
				}
			}
		}
	})
	const runs = 30
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.Limits = jail.Limits{Memory: 32 << 20, Disk: 64 << 20, FileSize: 256 << 20, WallTime: 20 * time.Second}
			counts := map[string]int{}
			for range runs {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				res, err := testJail.Run(ctx, tc.spec)
				cancel()
				key := string(res.Status)
				if err != nil {
					key += ": " + err.Error()
				}
				counts[key]++
			}
			if counts[string(jail.StatusMemoryLimit)] != runs {
				t.Errorf("of %d runs: %v; want all memory_limit", runs, counts)
			}
		})
	}
}

// haveCap reports whether this process holds capability c.
func haveCap(t *testing.T, c uint) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:\t"); ok {
			n, _ := strconv.ParseUint(v, 16, 64)
			return n&(1<<c) != 0
		}
	}
	return false
}

// TestRobustPerUserCounts: inotify instances, queued signals and POSIX
// message-queue bytes are counted per user, and also against the owner of
// the user namespace the caller lives in. A box must be charged to its own
// host ids, never to host root, so that exhausting them inside one box
// leaves the host and every other box their own.
func TestRobustPerUserCounts(t *testing.T) {
	prog := cProg(t, "ucounts")
	out, stop := holdBox(t, jail.Spec{Argv: []string{"./ucounts", "fill"}, Files: []jail.File{prog},
		Limits: jail.Limits{WallTime: time.Minute}}, "done")
	defer stop()
	box := strings.Split(out, "\n")
	got := map[string][]string{}
	for _, l := range box {
		if f := strings.Fields(l); len(f) > 1 {
			got[f[0]] = f[1:]
		}
	}
	t.Logf("box holding its counts: %q", box)
	// The box's user namespace belongs to its own root (host id of its
	// runbox-init), which is 0 inside; host root shows as the overflow id.
	if o := got["owner"]; len(o) != 1 || o[0] != "0" {
		t.Errorf("owner of the box's user namespace, seen inside: %v; want 0 (the box's own root)", o)
	}
	// The spawner clones with SECBIT_NO_SETUID_FIXUP on its thread; the
	// box's namespace starts without it.
	if b := got["securebits"]; len(b) != 1 || b[0] != "0" {
		t.Errorf("securebits of the program: %v", b)
	}
	// RLIMIT_SIGPENDING and RLIMIT_MSGQUEUE are small.
	if s := got["sigqueue"]; len(s) == 2 {
		if n, _ := strconv.Atoi(s[0]); n > 4096 {
			t.Errorf("the box queued %d signals", n)
		}
	}
	if m := got["mqueue"]; len(m) == 3 {
		if n, _ := strconv.Atoi(m[1]); n > 512<<10 {
			t.Errorf("the box holds %d bytes of message queues", n)
		}
	}

	// The host, as root, still has its own.
	hostOut, err := exec.Command(filepath.Join(progDir, "ucounts"), "once").CombinedOutput()
	if err != nil {
		t.Fatalf("ucounts on the host: %v\n%s", err, hostOut)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(hostOut)), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] != "owner" && f[0] != "securebits" && f[1] != "0" {
			t.Errorf("host root, while a box holds its counts: %s fails with errno %s", f[0], f[1])
		}
	}
	// So does another box.
	res := run(t, jail.Spec{Argv: []string{"./ucounts", "once"}, Files: []jail.File{prog}})
	expectStatus(t, res, jail.StatusOK)
	for _, l := range strings.Split(strings.TrimSpace(string(res.Stdout)), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] != "owner" && f[0] != "securebits" && f[1] != "0" {
			t.Errorf("another box, while a box holds its counts: %s fails with errno %s", f[0], f[1])
		}
	}
}

// TestRobustProjidMap: every id map of the box's user namespace is written
// when the box is made; an empty projid_map could be written once by the
// box itself, with any host project ids.
func TestRobustProjidMap(t *testing.T) {
	res := run(t, jail.Spec{Argv: sh("echo map $(cat /proc/self/projid_map); echo '0 0 4294967295' > /proc/self/projid_map; echo write $?; echo after $(cat /proc/self/projid_map)")})
	expectStatus(t, res, jail.StatusOK)
	got := fields(t, res.Stdout)
	if strings.TrimSpace(got["map"]) == "" {
		t.Errorf("projid_map is empty inside the box")
	}
	if got["write"] == "0" {
		t.Errorf("the box wrote its projid_map: now %q", got["after"])
	}
}

// TestRobustCgroupNamespaceRoot: the box's cgroup namespace is rooted at its
// own cgroup in every hierarchy, so /proc/self/cgroup says nothing of the
// host's tree (no runbox-<host pid>, no box number).
func TestRobustCgroupNamespaceRoot(t *testing.T) {
	res := run(t, jail.Spec{Argv: sh("cat /proc/self/cgroup; cat /proc/1/cgroup")})
	expectStatus(t, res, jail.StatusOK)
	lines := strings.Split(strings.TrimSpace(string(res.Stdout)), "\n")
	if len(lines) < 2 {
		t.Fatalf("cgroup files: %q", res.Stdout)
	}
	for _, l := range lines {
		if !strings.HasSuffix(l, ":/") {
			t.Errorf("cgroup line %q does not end in :/", l)
		}
	}
}

// TestRobustLoopbackTCPCharged: socket buffers of a box's loopback TCP
// connections are charged to its memory cgroup (on v2 they are part of
// memory.current; on v1 only once memory.kmem.tcp.limit_in_bytes is set).
func TestRobustLoopbackTCPCharged(t *testing.T) {
	const limit = 16 << 20
	out, stop := holdBox(t, jail.Spec{Argv: []string{"./tcpfill", "64"}, Files: []jail.File{cProg(t, "tcpfill")},
		Limits: jail.Limits{Memory: limit, WallTime: time.Minute}}, "done")
	// Read the box's own TCP peak while it still holds its buffers.
	var peaks []string
	if l, err := cgroup.Discover(); err == nil && l.Version == cgroup.V1 {
		pat := filepath.Join(l.V1["memory"], testConfig.CgroupPrefix+strconv.Itoa(os.Getpid())+"-*", "box-*", "memory.kmem.tcp.max_usage_in_bytes")
		files, _ := filepath.Glob(pat)
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil {
				peaks = append(peaks, strings.TrimSpace(string(b)))
			}
		}
	}
	res := stop()
	got := fields(t, []byte(out))
	queued, _ := strconv.ParseInt(got["queued"], 10, 64)
	t.Logf("pairs %s, queued %d bytes; v1 tcp peaks %v; %s", got["pairs"], queued, peaks, res.Status)
	// The kernel lets each socket go a little past the limit (it forces
	// the charge of a socket's first buffers rather than fail them).
	if queued > limit+limit/2 {
		t.Errorf("a %d-byte box queued %d bytes in loopback TCP buffers", limit, queued)
	}
	for _, p := range peaks {
		if n, _ := strconv.ParseInt(p, 10, 64); n > limit+limit/2 {
			t.Errorf("memory.kmem.tcp.max_usage_in_bytes %d in a %d-byte box", n, limit)
		}
	}
}

// TestRobustRequestFaults: a request that cannot run because of what it
// asks (files larger than the disk, an argv or environment larger than a
// box accepts) is an error wrapping the jail's sentinel for it, which the
// API turns into a 422; a command name too long to execute is the
// program's runtime_error 127, never runbox's failure.
func TestRobustRequestFaults(t *testing.T) {
	j := needJail(t)
	big := func(n int, b byte) string { return strings.Repeat(string(b), n) }
	cases := []struct {
		name string
		spec jail.Spec
		want error
	}{
		{"files larger than the disk", jail.Spec{Argv: []string{"true"}, Limits: jail.Limits{Disk: 1 << 20},
			Files: []jail.File{{Name: "a", Data: make([]byte, 2<<20)}}}, jail.ErrWorkspaceFull},
		{"files fitting in bytes but not in pages", jail.Spec{Argv: []string{"true"}, Limits: jail.Limits{Disk: 64 << 10},
			Files: func() []jail.File {
				var fs []jail.File
				for i := range 20 {
					fs = append(fs, jail.File{Name: fmt.Sprintf("f%d", i), Data: make([]byte, 3000)})
				}
				return fs
			}()}, jail.ErrWorkspaceFull},
		{"more files than inodes", jail.Spec{Argv: []string{"true"}, Limits: jail.Limits{Disk: 64 << 10},
			Files: func() []jail.File {
				var fs []jail.File
				for i := range 1100 {
					fs = append(fs, jail.File{Name: fmt.Sprintf("f%d", i)})
				}
				return fs
			}()}, jail.ErrWorkspaceFull},
		{"an argument above MaxArgBytes", jail.Spec{Argv: []string{"true", big(jail.MaxArgBytes+1, 'a')}}, jail.ErrSpecTooLarge},
		{"an environment above MaxConfigBytes", jail.Spec{Argv: []string{"true"}, Env: []string{
			"A=" + big(120<<10, 'a'), "B=" + big(120<<10, 'a'), "C=" + big(120<<10, 'a'), "D=" + big(120<<10, 'a'), "E=" + big(120<<10, 'a')}}, jail.ErrSpecTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := j.Run(t.Context(), tc.spec)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v (status %s), want %v", err, res.Status, tc.want)
			}
		})
	}
	t.Run("arguments within the bounds run, control characters and all", func(t *testing.T) {
		// JSON escaped each control character as six bytes: the config
		// message grew past what init accepted.
		res, err := j.Run(t.Context(), jail.Spec{Argv: []string{"/bin/sh", "-c", `echo $#`, "sh",
			big(100<<10, 1), big(100<<10, 2), big(100<<10, 3), big(100<<10, 4)}})
		if err != nil {
			t.Fatal(err)
		}
		expectStatus(t, res, jail.StatusOK)
		if strings.TrimSpace(string(res.Stdout)) != "4" {
			t.Errorf("stdout %q", res.Stdout)
		}
	})
	for _, name := range []string{big(70000, 'x'), "/" + big(70000, 'x')} {
		t.Run(fmt.Sprintf("a %d-byte command name", len(name)), func(t *testing.T) {
			res, err := j.Run(t.Context(), jail.Spec{Argv: []string{name}})
			if err != nil {
				t.Fatalf("%.300v", err)
			}
			expectStatus(t, res, jail.StatusRuntimeError)
			if res.ExitCode != 127 || !strings.Contains(res.Message, "too long") || len(res.Message) > 1024 {
				t.Errorf("exit %d, message (%d bytes) %.300q", res.ExitCode, len(res.Message), res.Message)
			}
		})
	}
}

// TestRobustPhaseDeadlines: the phases of a box that its limits do not
// cover — becoming ready, taking its files, collecting and exiting after
// the program, dying — each end with the box killed at a deadline, and the
// run returns with nothing of the box left.
func TestRobustPhaseDeadlines(t *testing.T) {
	needJail(t)
	j, err := jail.New(testConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	const long = time.Minute
	cases := []struct {
		name                         string
		ready, setup, tail, teardown time.Duration
		spec                         jail.Spec
		wantErr                      bool
	}{
		{name: "not ready in time", ready: time.Nanosecond, setup: long, tail: long, teardown: long,
			spec: jail.Spec{Argv: []string{"true"}}, wantErr: true},
		{name: "files not in in time", ready: long, setup: time.Nanosecond, tail: long, teardown: long,
			spec: jail.Spec{Argv: []string{"true"}, Files: []jail.File{{Name: "big", Data: make([]byte, 32<<20)}}}, wantErr: true},
		{name: "collection not done in time", ready: long, setup: long, tail: time.Nanosecond, teardown: long,
			spec: jail.Spec{Argv: sh("echo a > a"), Collect: &jail.Collect{Patterns: []string{"**"}, MaxTime: time.Nanosecond}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			jail.SetPhaseTimeouts(j, tc.ready, tc.setup, tc.tail, tc.teardown)
			start := time.Now()
			res, err := j.Run(t.Context(), tc.spec)
			if el := time.Since(start); el > 10*time.Second {
				t.Errorf("run took %v", el)
			}
			if tc.wantErr {
				if err == nil || res.Status != jail.StatusInternalError {
					t.Fatalf("err %v, status %s", err, res.Status)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				expectStatus(t, res, jail.StatusOK)
				if !res.FilesTruncated {
					t.Errorf("%d files back from a cut collection, not truncated", len(res.Files))
				}
			}
			t.Logf("%s: %v", res.Status, err)
			eventually(t, 5*time.Second, func() error {
				if p := boxProcesses(t); len(p) > 0 {
					return fmt.Errorf("box processes left: %v", p)
				}
				return nil
			})
		})
	}
}
