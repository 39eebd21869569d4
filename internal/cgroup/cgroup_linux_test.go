package cgroup

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cleanupGroup removes a test's groups even when the test fails midway.
func cleanupGroup(t *testing.T, m *Manager, g **Group) {
	t.Cleanup(func() {
		if *g != nil && (*g).dirs != nil {
			(*g).Kill()
			(*g).Remove()
		}
		m.Close()
	})
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("requires root (creates cgroups)")
	}
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// startIn starts a sleep, placed with Enter (v1) or born in the group (v2).
func startIn(t *testing.T, g *Group, argv ...string) *exec.Cmd {
	t.Helper()
	if len(argv) == 0 {
		argv = []string{"sleep", "60"}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	if fd := g.FD(); fd >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if g.FD() < 0 {
		if err := g.Enter(cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
	}
	return cmd
}

func TestV1Lifecycle(t *testing.T) {
	requireRoot(t)
	l, err := Discover()
	if err != nil || l.Version != V1 {
		t.Skipf("requires the memory and pids controllers on cgroup v1 (found %v, %v)", l.Version, err)
	}
	m, err := NewManager(l, "runbox-cgtest-"+strconv.Itoa(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	var g *Group
	cleanupGroup(t, m, &g)
	g, err = m.New("box-1", Limits{MemoryBytes: 32 << 20, Pids: 7, CPUQuota: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	md, pd := g.ctrl["memory"], g.ctrl["pids"]
	if !strings.HasPrefix(md, l.V1["memory"]+"/") {
		t.Fatalf("memory group %s is not under our own %s", md, l.V1["memory"])
	}
	if got := readTrim(t, filepath.Join(md, "memory.limit_in_bytes")); got != strconv.Itoa(32<<20) {
		t.Errorf("memory.limit_in_bytes %s", got)
	}
	if got := readTrim(t, filepath.Join(pd, "pids.max")); got != "7" {
		t.Errorf("pids.max %s", got)
	}
	if cd, ok := g.ctrl["cpu"]; ok {
		if got := readTrim(t, filepath.Join(cd, "cpu.cfs_quota_us")); got != "50000" {
			t.Errorf("cpu.cfs_quota_us %s", got)
		}
	}
	// TCP buffers are charged (only) once a TCP limit is set: with the
	// memory limit, from the group's creation on.
	tcp := filepath.Join(md, "memory.kmem.tcp.limit_in_bytes")
	if _, err := os.Stat(tcp); err == nil {
		if got := readTrim(t, tcp); got != strconv.Itoa(32<<20) {
			t.Errorf("memory.kmem.tcp.limit_in_bytes %s", got)
		}
	}
	// Raise the limit on a live group (memsw must move first).
	if err := g.Set(Limits{MemoryBytes: 64 << 20, Pids: 7}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tcp); err == nil {
		if got := readTrim(t, tcp); got != strconv.Itoa(64<<20) {
			t.Errorf("memory.kmem.tcp.limit_in_bytes after Set: %s", got)
		}
	}
	// Charges are not moved along with a process on v1: allocate after
	// entering.
	cmd := startIn(t, g, "/usr/bin/python3", "-c", "import time; time.sleep(0.2); b = bytearray(8 << 20); time.sleep(60)")
	pids, err := g.Pids()
	if err != nil || len(pids) != 1 || pids[0] != cmd.Process.Pid {
		t.Fatalf("pids %v %v", pids, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := g.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if s.MemoryPeak >= 8<<20 && s.CPUTime > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats never showed the 8MiB allocation: %+v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range l.V1 {
		if _, err := os.Stat(filepath.Join(d, "runbox-cgtest-"+strconv.Itoa(os.Getpid()))); !os.IsNotExist(err) {
			t.Errorf("left behind in %s: %v", d, err)
		}
	}
}

// cgroup v2 with CLONE_INTO_CGROUP and cgroup.kill, on the host's unified
// hierarchy. On a hybrid host it has no controllers, so limits are not
// exercised here; the kernel features that the v2 path relies on are.
func TestV2Lifecycle(t *testing.T) {
	requireRoot(t)
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	self, _ := os.ReadFile("/proc/self/cgroup")
	var l Layout
	for _, line := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(line); len(f) > 8 && strings.Contains(line, " - cgroup2 ") && f[3] == "/" {
			for _, s := range strings.Split(string(self), "\n") {
				if strings.HasPrefix(s, "0::") {
					l = Layout{Version: V2, V2: filepath.Join(f[4], strings.TrimPrefix(s, "0::"))}
				}
			}
		}
	}
	if l.V2 == "" {
		t.Skip("requires a cgroup2 mount")
	}
	b, _ := os.ReadFile(filepath.Join(l.V2, "cgroup.controllers"))
	l.V2Controllers = strings.Fields(string(b))
	if _, err := os.Stat(filepath.Join(l.V2, "cgroup.kill")); err != nil && l.V2 != "/sys/fs/cgroup/unified" {
		t.Skip("requires cgroup.kill (Linux 5.14)")
	}
	m, err := NewManager(l, "runbox-cgtest-"+strconv.Itoa(os.Getpid()))
	if err != nil {
		t.Skipf("requires a writable cgroup2 hierarchy: %v", err)
	}
	var g *Group
	cleanupGroup(t, m, &g)
	g, err = m.New("box-1", Limits{MemoryBytes: 32 << 20, Pids: 8})
	if err != nil {
		t.Fatal(err)
	}
	if g.FD() < 0 {
		t.Fatal("no descriptor for CLONE_INTO_CGROUP")
	}
	cmd := startIn(t, g)
	own := readTrim(t, "/proc/"+strconv.Itoa(cmd.Process.Pid)+"/cgroup")
	if !strings.Contains(own, "0::/") || !strings.HasSuffix(own, "/runbox-cgtest-"+strconv.Itoa(os.Getpid())+"/box-1") {
		t.Fatalf("process born in %q", own)
	}
	if _, err := g.Stats(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("cgroup.kill did not kill the process")
	}
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
}

func TestSweepRemovesGroupsOfDeadSupervisors(t *testing.T) {
	requireRoot(t)
	l, err := Discover()
	if err != nil {
		t.Skipf("requires cgroups: %v", err)
	}
	// A "crashed" supervisor: a pid that is not running.
	dead := 1 << 22
	name := "runbox-sweeptest-" + strconv.Itoa(dead) + "-3"
	m, err := NewManager(l, name)
	if err != nil {
		t.Fatal(err)
	}
	var g *Group
	cleanupGroup(t, m, &g)
	g, err = m.New("box-9", Limits{MemoryBytes: 16 << 20, Pids: 4})
	if err != nil {
		t.Fatal(err)
	}
	cmd := startIn(t, g)
	if err := Sweep(l, "runbox-sweeptest-", func(pid int) bool { return pid != dead }); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	for _, d := range m.dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s survived the sweep", d)
		}
	}
}

// A session's command group: a child of a box group, in every hierarchy
// of it, whose processes are counted and killed apart from the box's; a
// sweep removes box groups with children too.
func TestChildGroupsAndNestedSweep(t *testing.T) {
	requireRoot(t)
	l, err := Discover()
	if err != nil {
		t.Skipf("requires cgroups: %v", err)
	}
	dead := 1<<22 + 1
	m, err := NewManager(l, "runbox-childtest-"+strconv.Itoa(dead)+"-1")
	if err != nil {
		t.Fatal(err)
	}
	var g *Group
	cleanupGroup(t, m, &g)
	g, err = m.New("box-1", Limits{MemoryBytes: 32 << 20, Pids: 16})
	if err != nil {
		t.Fatal(err)
	}
	c, err := g.Child("cmd-1", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.dirs) != len(g.dirs) {
		t.Fatalf("child in %d hierarchies, box in %d", len(c.dirs), len(g.dirs))
	}
	for _, d := range c.dirs {
		if filepath.Base(filepath.Dir(d)) != "box-1" {
			t.Fatalf("child directory %s not below the box's", d)
		}
	}
	if g.FD() >= 0 {
		t.Skip("cgroup v2: the rest places processes with Enter (v1)")
	}
	outer := startIn(t, g)
	inner := startIn(t, c)
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	inner.Wait()
	if err := outer.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("killing the child group killed the box's process: %v", err)
	}
	// A crashed supervisor's box with a command group still in it.
	if _, err := g.Child("cmd-2", Limits{}); err != nil {
		t.Fatal(err)
	}
	if err := Sweep(l, "runbox-childtest-", func(pid int) bool { return pid != dead }); err != nil {
		t.Fatal(err)
	}
	outer.Wait()
	for _, d := range append(append([]string{}, m.dirs...), c.dirs...) {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s survived the sweep", d)
		}
	}
}
