package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cfsPeriod is the CPU bandwidth period used for quotas, in microseconds.
const cfsPeriod = 100000

// Manager creates box groups under one parent group of its own,
// <own cgroup>/<name>, in every hierarchy it uses.
type Manager struct {
	layout Layout
	name   string
	dirs   []string // the parent group's directory in each hierarchy (v1), or one (v2)
	ctrl   map[string]string
}

// NewManager creates the parent group name under our own cgroup. name must be
// a single path element; it is usually "runbox-<pid>", so that a later run
// can sweep what a crashed one left behind.
func NewManager(l Layout, name string) (*Manager, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	m := &Manager{layout: l, name: name, ctrl: map[string]string{}}
	switch l.Version {
	case V1:
		seen := map[string]bool{}
		for _, c := range append(append([]string{}, required...), optional...) {
			own, ok := l.V1[c]
			if !ok {
				continue
			}
			d := filepath.Join(own, name)
			m.ctrl[c] = d
			if seen[d] {
				continue
			}
			seen[d] = true
			if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
				m.Close()
				return nil, fmt.Errorf("create cgroup %s: %w", d, err)
			}
			m.dirs = append(m.dirs, d)
			if c == "memory" {
				// Turning TCP accounting on for a group enables a static
				// key (memcg_sockets_enabled_key) the first time, and off
				// again when the last such group goes: kernel text
				// patching on every box when boxes run one at a time.
				// The parent keeps it on, without a limit of its own.
				_ = writeFile(d, "memory.kmem.tcp.limit_in_bytes", "-1")
			}
		}
	case V2:
		if err := m.setupV2(); err != nil {
			m.Close()
			return nil, err
		}
	default:
		return nil, ErrNoCgroups
	}
	return m, nil
}

// setupV2 makes <own>/<name> with the memory, pids and cpu controllers
// delegated to its children. cgroup v2 lets a group hand controllers to its
// children only when it has no processes of its own, so if enabling them on
// our own cgroup is refused because we live in it, we move ourselves — and
// nothing else — into a leaf <own>/<name>.supervisor first, as systemd's
// delegation documentation describes.
func (m *Manager) setupV2() error {
	own := m.layout.V2
	want := []string{}
	have := map[string]bool{}
	for _, c := range m.layout.V2Controllers {
		have[c] = true
	}
	for _, c := range []string{"memory", "pids", "cpu"} {
		if have[c] {
			want = append(want, "+"+c)
		}
	}
	if len(want) > 0 {
		err := writeFile(own, "cgroup.subtree_control", strings.Join(want, " "))
		if errors.Is(err, unix.EBUSY) {
			leaf := filepath.Join(own, m.name+".supervisor")
			if err := os.Mkdir(leaf, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
				return fmt.Errorf("create cgroup %s: %w", leaf, err)
			}
			if err := writeFile(leaf, "cgroup.procs", strconv.Itoa(os.Getpid())); err != nil {
				return err
			}
			err = writeFile(own, "cgroup.subtree_control", strings.Join(want, " "))
		}
		if err != nil {
			return fmt.Errorf("delegate controllers: %w", err)
		}
	}
	d := filepath.Join(own, m.name)
	if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create cgroup %s: %w", d, err)
	}
	m.dirs = []string{d}
	if len(want) > 0 {
		if err := writeFile(d, "cgroup.subtree_control", strings.Join(want, " ")); err != nil {
			return fmt.Errorf("delegate controllers: %w", err)
		}
	}
	return nil
}

// Version reports the hierarchy layout in use.
func (m *Manager) Version() Version { return m.layout.Version }

// Close removes the parent group. Every box group must be removed first.
func (m *Manager) Close() error {
	err := removeAll(m.dirs)
	m.dirs = nil
	return err
}

// removeAll removes cgroup directories, children first as listed.
func removeAll(dirs []string) error {
	var errs []error
	for _, d := range dirs {
		if err := rmdirRetry(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkName accepts a single path element.
func checkName(name string) error {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return fmt.Errorf("cgroup name %q: must be one path element", name)
	}
	return nil
}

// Group is one box's cgroup.
type Group struct {
	version Version
	dirs    []string          // every directory of this group
	ctrl    map[string]string // controller → directory (v1); "" → directory (v2)
	fd      int               // v2: an O_PATH descriptor for CLONE_INTO_CGROUP, else -1
	// set holds what Set last wrote to each control file (by path): only
	// runbox writes a group's limits, so a value already there is not
	// written again. A warm box's limits are set again when a request
	// takes it, most of them to what they were.
	set map[string]string
}

// write writes a limit unless Set last wrote the same value there.
func (g *Group) write(dir, name, value string) error {
	path := dir + "/" + name
	if v, ok := g.set[path]; ok && v == value {
		return nil
	}
	if err := writeFile(dir, name, value); err != nil {
		delete(g.set, path)
		return err
	}
	if g.set == nil {
		g.set = map[string]string{}
	}
	g.set[path] = value
	return nil
}

// New creates a box group called name (one path element) with the limits.
func (m *Manager) New(name string, l Limits) (*Group, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	g := &Group{version: m.layout.Version, ctrl: map[string]string{}, fd: -1}
	if m.layout.Version == V1 {
		made := map[string]string{}
		for c, parent := range m.ctrl {
			d := filepath.Join(parent, name)
			if _, ok := made[parent]; !ok {
				if err := os.Mkdir(d, 0o700); err != nil {
					g.Remove()
					return nil, fmt.Errorf("create cgroup %s: %w", d, err)
				}
				made[parent] = d
				g.dirs = append(g.dirs, d)
			}
			g.ctrl[c] = d
		}
	} else {
		d := filepath.Join(m.dirs[0], name)
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, fmt.Errorf("create cgroup %s: %w", d, err)
		}
		g.dirs = []string{d}
		g.ctrl[""] = d
		fd, err := unix.Open(d, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			g.Remove()
			return nil, fmt.Errorf("open cgroup %s: %w", d, err)
		}
		g.fd = fd
	}
	if err := g.Set(l); err != nil {
		g.Remove()
		return nil, err
	}
	return g, nil
}

// Child creates a group name (one path element) below g, in every
// hierarchy g is in, with limits l (zero: none of its own; g's still hold
// it). A session gives each command one: its CPU time, its OOM kills and
// its kill then cover exactly the command and everything it started.
//
// On cgroup v2 the child gets no controllers of its own (g holds a
// process, runbox-init, and the no-internal-process rule forbids
// delegating controllers from such a group): cgroup.kill and cpu.stat's
// usage_usec work without them, memory.events does not.
func (g *Group) Child(name string, l Limits) (*Group, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	c := &Group{version: g.version, ctrl: map[string]string{}, fd: -1}
	made := map[string]string{}
	for ctl, parent := range g.ctrl {
		d, ok := made[parent]
		if !ok {
			d = filepath.Join(parent, name)
			if err := os.Mkdir(d, 0o700); err != nil {
				c.Remove()
				return nil, fmt.Errorf("create cgroup %s: %w", d, err)
			}
			made[parent] = d
			c.dirs = append(c.dirs, d)
		}
		c.ctrl[ctl] = d
	}
	if err := c.Set(l); err != nil {
		c.Remove()
		return nil, err
	}
	return c, nil
}

// Set applies limits.
func (g *Group) Set(l Limits) error {
	mem := "max"
	pids := "max"
	if l.MemoryBytes > 0 {
		mem = strconv.FormatInt(l.MemoryBytes, 10)
	}
	if l.Pids > 0 {
		pids = strconv.FormatInt(l.Pids, 10)
	}
	quota := int64(-1)
	if l.CPUQuota > 0 {
		quota = int64(l.CPUQuota * cfsPeriod)
		if quota < 1000 {
			quota = 1000
		}
	}
	if g.version == V1 {
		md := g.ctrl["memory"]
		v1mem := mem
		if mem == "max" {
			v1mem = "-1"
		}
		// Swap 0: memsw (memory+swap) is held at the memory limit when swap
		// accounting exists, and swappiness 0 keeps the box's pages in RAM.
		// The kernel wants memory <= memsw at every step, so when raising
		// the limit memsw must move first, and when lowering, memory.
		memsw := exists(md, "memory.memsw.limit_in_bytes")
		first, second := "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"
		if prev, ok := g.set[md+"/"+first]; ok && raises(prev, v1mem) {
			first, second = second, first
		}
		if !memsw {
			first, second = "memory.limit_in_bytes", ""
		}
		err := g.write(md, first, v1mem)
		if second != "" {
			if err == nil {
				err = g.write(md, second, v1mem)
			} else if err = g.write(md, second, v1mem); err == nil {
				err = g.write(md, first, v1mem)
			}
		}
		if err != nil {
			return err
		}
		if err := g.write(md, "memory.swappiness", "0"); err != nil {
			return err
		}
		// Socket buffers: on v1 the kernel charges a group's TCP memory
		// only once its memory.kmem.tcp.limit_in_bytes has been written
		// (mem_cgroup_sk_alloc skips a group whose tcpmem_active is off),
		// and then to that counter alone. Unset, a 16 MiB box pinned
		// 240 MiB of loopback TCP buffers, up to the host's tcp_mem, at
		// which every TCP socket of the host stalls. Sockets made before
		// the first write stay uncharged: Set runs when the group is made,
		// before anything runs in it. (On v2, socket memory is part of
		// memory.current and held by memory.max.)
		if err := g.write(md, "memory.kmem.tcp.limit_in_bytes", v1mem); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := g.write(g.ctrl["pids"], "pids.max", pids); err != nil {
			return err
		}
		if cd, ok := g.ctrl["cpu"]; ok {
			if err := g.write(cd, "cpu.cfs_period_us", strconv.Itoa(cfsPeriod)); err != nil {
				return err
			}
			if err := g.write(cd, "cpu.cfs_quota_us", strconv.FormatInt(quota, 10)); err != nil {
				return err
			}
		}
		return nil
	}
	d := g.ctrl[""]
	if exists(d, "memory.max") {
		if err := g.write(d, "memory.max", mem); err != nil {
			return err
		}
		// The whole box dies together when the OOM killer picks any of it.
		if err := g.write(d, "memory.oom.group", "1"); err != nil {
			return err
		}
	}
	if exists(d, "memory.swap.max") {
		if err := g.write(d, "memory.swap.max", "0"); err != nil {
			return err
		}
	}
	if exists(d, "pids.max") {
		if err := g.write(d, "pids.max", pids); err != nil {
			return err
		}
	}
	if exists(d, "cpu.max") {
		q := "max"
		if quota > 0 {
			q = strconv.FormatInt(quota, 10)
		}
		if err := g.write(d, "cpu.max", fmt.Sprintf("%s %d", q, cfsPeriod)); err != nil {
			return err
		}
	}
	return nil
}

// raises reports whether the v1 memory limit next is above prev ("-1":
// none). The kernel keeps memory ≤ memory+swap at every step: raising, the
// memory+swap limit moves first.
func raises(prev, next string) bool {
	if prev == next {
		return false
	}
	if next == "-1" {
		return true
	}
	if prev == "-1" {
		return false
	}
	p, err1 := strconv.ParseInt(prev, 10, 64)
	n, err2 := strconv.ParseInt(next, 10, 64)
	return err1 == nil && err2 == nil && n > p
}

// SetOOMGroup turns cgroup v2's memory.oom.group on or off (Set turns it
// on: an OOM kill takes the whole box). A session box turns it off, so that
// the OOM killer takes one command's process, never the session. cgroup v1
// has no such switch: it does nothing there.
func (g *Group) SetOOMGroup(on bool) error {
	if g.version != V2 || !exists(g.ctrl[""], "memory.oom.group") {
		return nil
	}
	v := "0"
	if on {
		v = "1"
	}
	return g.write(g.ctrl[""], "memory.oom.group", v)
}

// Version reports the group's hierarchy layout.
func (g *Group) Version() Version { return g.version }

func exists(dir, name string) bool {
	_, err := os.Stat(filepath.Join(dir, name))
	return err == nil
}

// FD returns a descriptor for clone3(CLONE_INTO_CGROUP) on v2, or -1 on v1,
// where the process must be moved with Enter instead.
func (g *Group) FD() int { return g.fd }

// Enter moves a process into the group (in every hierarchy on v1).
func (g *Group) Enter(pid int) error {
	for _, d := range g.dirs {
		if err := writeFile(d, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("enter cgroup: %w", err)
		}
	}
	return nil
}

// Stats reads CPU time, peak memory and OOM kills.
func (g *Group) Stats() (Stats, error) {
	var s Stats
	if g.version == V1 {
		if d, ok := g.ctrl["cpuacct"]; ok {
			ns, err := readInt(d, "cpuacct.usage")
			if err != nil {
				return s, fmt.Errorf("cgroup stats: %w", err)
			}
			s.CPUTime = time.Duration(ns)
		}
		md := g.ctrl["memory"]
		peak, err := readInt(md, "memory.max_usage_in_bytes")
		if err != nil {
			return s, fmt.Errorf("cgroup stats: %w", err)
		}
		s.MemoryPeak = peak
		// oom_kill exists since Linux 4.13; under_oom alone cannot tell a
		// kill that already happened.
		s.OOMKills, _ = readKey(md, "memory.oom_control", "oom_kill")
		return s, nil
	}
	d := g.ctrl[""]
	if us, err := readKey(d, "cpu.stat", "usage_usec"); err == nil {
		s.CPUTime = time.Duration(us) * time.Microsecond
	}
	if exists(d, "memory.peak") {
		s.MemoryPeak, _ = readInt(d, "memory.peak")
	}
	if exists(d, "memory.events") {
		s.OOMKills, _ = readKey(d, "memory.events", "oom_kill")
	}
	return s, nil
}

// Pids lists the processes in the group.
func (g *Group) Pids() ([]int, error) {
	f, err := os.Open(filepath.Join(g.dirs[0], "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var pids []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if p, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil {
			pids = append(pids, p)
		}
	}
	return pids, sc.Err()
}

// Kill kills every process in the group and waits until it is empty. On v2
// it uses cgroup.kill (atomic, Linux 5.14); on v1 it signals the listed
// processes until none is left. Processes in the group are ours by
// construction, so killing them by pid is safe.
func (g *Group) Kill() error {
	if g.version == V2 && exists(g.dirs[0], "cgroup.kill") {
		if err := writeFile(g.dirs[0], "cgroup.kill", "1"); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids, err := g.Pids()
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("kill cgroup: %w", err)
		}
		if len(pids) == 0 {
			return nil
		}
		for _, p := range pids {
			_ = unix.Kill(p, unix.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kill cgroup %s: %d processes left", g.dirs[0], len(pids))
		}
		time.Sleep(time.Millisecond)
	}
}

// Remove deletes the group's directories. The group must be empty.
func (g *Group) Remove() error {
	if g.fd >= 0 {
		unix.Close(g.fd)
		g.fd = -1
	}
	err := removeAll(g.dirs)
	g.dirs = nil
	return err
}

// Sweep removes parent groups named prefix<pid> or prefix<pid>-<n> (and their box groups) under
// our own cgroup whose pid no longer runs: what a crashed supervisor left
// behind. It kills processes still in them first.
func Sweep(l Layout, prefix string, alive func(pid int) bool) error {
	var roots []string
	if l.Version == V1 {
		seen := map[string]bool{}
		for _, d := range l.V1 {
			if !seen[d] {
				seen[d] = true
				roots = append(roots, d)
			}
		}
	} else {
		roots = []string{l.V2}
	}
	var errs []error
	for _, root := range roots {
		ents, err := os.ReadDir(root)
		if err != nil {
			continue
		}
		for _, e := range ents {
			name := e.Name()
			if !e.IsDir() || !strings.HasPrefix(name, prefix) {
				continue
			}
			// <prefix><pid>, <prefix><pid>-<n>, or either with .supervisor.
			rest := strings.TrimSuffix(strings.TrimPrefix(name, prefix), ".supervisor")
			pidStr, _, _ := strings.Cut(rest, "-")
			pid, err := strconv.Atoi(pidStr)
			if err != nil || alive(pid) {
				continue
			}
			errs = append(errs, removeTree(l.Version, filepath.Join(root, name), 0))
		}
	}
	return errors.Join(errs...)
}

// maxTreeDepth bounds removeTree: parent, box, command.
const maxTreeDepth = 4

// removeTree kills and removes a group and the groups below it (a box's
// command groups), children first.
func removeTree(v Version, dir string, depth int) error {
	var errs []error
	if depth < maxTreeDepth {
		subs, _ := os.ReadDir(dir)
		for _, s := range subs {
			if s.IsDir() {
				errs = append(errs, removeTree(v, filepath.Join(dir, s.Name()), depth+1))
			}
		}
	}
	g := &Group{version: v, dirs: []string{dir}, fd: -1}
	errs = append(errs, g.Kill(), g.Remove())
	return errors.Join(errs...)
}

// Since is the usage from base to s: CPU time and OOM kills are counters.
// The memory peak cannot be rebased and is kept as it is.
func (s Stats) Since(base Stats) Stats {
	return Stats{CPUTime: s.CPUTime - base.CPUTime, MemoryPeak: s.MemoryPeak, OOMKills: s.OOMKills - base.OOMKills}
}
