package main

import (
	"slices"
	"strings"
)

// Rows of the role table, in the order they are printed. roleIdle samples
// are counted apart and left out of every share.
const (
	roleInit       = "box init (`exe`)"
	roleSpawner    = "spawner (runbox-init run from /proc/self/fd/N: comm `N`)"
	roleSupervisor = "supervisor (`jail.test`, the benchmark)"
	roleProgram    = "program"
	roleBenchOther = "other processes of the benchmark"
	roleKernel     = "kernel threads"
	roleIdleIRQ    = "interrupts taken on an idle CPU"
	roleGone       = "tasks being reaped that perf cannot name (pid −1)"
	rolePerf       = "perf itself (and its sleep)"
	roleOther      = "other processes (not this benchmark)"
	roleIdle       = "idle"
)

var roleOrder = []string{roleInit, roleSpawner, roleSupervisor, roleProgram, roleBenchOther,
	roleKernel, roleIdleIRQ, roleGone, rolePerf, roleOther}

// roleOf places a sample. The benchmark's processes are told apart by
// name: box init is runbox-init executed from the spawner's /proc/self/exe
// (comm "exe"), the spawner is runbox-init executed from the supervisor's
// /proc/self/fd/N (comm "N"), and each box's program has its own name. A
// process keeps its parent's name from fork to exec, so the init's child
// before it executes the program counts as init, and a new init before it
// executes runbox-init counts as the spawner.
func roleOf(s sample, benchPID int, program string) string {
	switch s.owner {
	case ownerBench:
		switch {
		case s.pid == benchPID:
			return roleSupervisor
		case s.comm == "exe":
			return roleInit
		case s.comm == program:
			return roleProgram
		case s.comm != "" && strings.Trim(s.comm, "0123456789") == "":
			return roleSpawner
		}
		return roleBenchOther
	case ownerKernel:
		return roleKernel
	case ownerIdle:
		if idle(kernelFrames(s)) {
			return roleIdle
		}
		return roleIdleIRQ
	case ownerGone:
		return roleGone
	case ownerPerf:
		return rolePerf
	}
	return roleOther
}

// idle: the idle task halted, not serving an interrupt.
func idle(k []string) bool {
	return slices.Contains(k, "do_idle") && !slices.ContainsFunc(k, interrupt)
}

func interrupt(f string) bool {
	return strings.HasPrefix(f, "asm_sysvec_") || strings.HasPrefix(f, "sysvec_") ||
		f == "asm_common_interrupt" || f == "common_interrupt" ||
		f == "handle_softirqs" || f == "__do_softirq" || f == "irq_exit_rcu"
}

// kernelGroup names a kernel thread's kind: "kworker (cgr…)" (a worker's
// name ends in the workqueue it last served, cut to 15 bytes), "ksoftirqd",
// "rcu", "kdamond", …
func kernelGroup(comm string) string {
	base, rest, _ := strings.Cut(comm, "/")
	if base == "kworker" {
		if i := strings.IndexAny(rest, "-+"); i >= 0 && i+1 < len(rest) {
			return "kworker (" + rest[i+1:] + "…)"
		}
		return "kworker"
	}
	if strings.HasPrefix(base, "rcu") {
		return "rcu"
	}
	base, _, _ = strings.Cut(base, ".")
	return base
}

// Phases that are not a runbox-init function.
const (
	phaseRuntime    = "Go runtime" // + where its stack starts
	phaseKernelOnly = "no user stack: "
)

// phaseOf names the part of runbox-init a sample is in: the outermost
// boxinit function under anchor (run for box init, spawnerMain for the
// spawner), one level deeper for the functions in expand ("buildRoot →
// maskProc"). fns are the sample's runbox-init functions, innermost first.
// Samples of the Go runtime alone are named by where their stack starts.
//
// A sample in the kernel with at most one runbox-init frame has no usable
// user stack: perf walks the user stack from the kernel's entry, and when
// execve has replaced the memory (the forked child becoming the program or
// the new init) or exit has freed it, only the entry's address is left.
// Such samples are named by their kernel entry.
func phaseOf(fns []string, anchor string, expand map[string]bool, kentry string) string {
	if len(fns) == 0 || len(fns) == 1 && kentry != entryUser {
		return phaseKernelOnly + kentry
	}
	out := slices.Clone(fns) // outermost first
	slices.Reverse(out)
	isBoxinit := func(f string) bool { _, ok := boxinitName(f); return ok }
	a := slices.IndexFunc(out, func(f string) bool { n, ok := boxinitName(f); return ok && n == anchor })
	if a < 0 {
		// Not under the anchor: Main before or after it, another
		// goroutine, or the Go runtime alone.
		b := slices.IndexFunc(out, isBoxinit)
		if b < 0 {
			return phaseRuntime + ": " + runtimeRoot(out)
		}
		n, _ := boxinitName(out[b])
		if n == "Main" {
			return "Main → " + callee(out[b+1:])
		}
		return n + " (outside " + anchor + ")"
	}
	below := out[a+1:]
	b := slices.IndexFunc(below, isBoxinit)
	if b < 0 {
		return anchor + " → " + callee(below)
	}
	n, _ := boxinitName(below[b])
	if expand[n] {
		sub := below[b+1:]
		if c := slices.IndexFunc(sub, isBoxinit); c >= 0 {
			m, _ := boxinitName(sub[c])
			return n + " → " + m
		}
		return n + " → " + callee(sub)
	}
	return n
}

// runtimeRoot names where a stack of the Go runtime alone starts: the
// function under runtime.goexit for a goroutine, else the outermost one
// (runtime.rt0_go while the runtime starts, runtime.mstart on a new
// thread or the scheduler's own stack, runtime.sigtramp in a signal
// handler). fns are outermost first.
func runtimeRoot(fns []string) string {
	if len(fns) > 1 && short(fns[0]) == "runtime.goexit" {
		return short(fns[1])
	}
	return short(fns[0])
}

// callee names the outermost of fns, the function called directly.
func callee(fns []string) string {
	if len(fns) == 0 {
		return "its own code"
	}
	return short(fns[0])
}

// Kernel entries: how a sample came to be in the kernel.
const (
	entryUser    = "user space (no kernel frame)"
	entryExit    = "exit and teardown (under do_exit)"
	entryFault   = "page faults"
	entryIRQ     = "interrupts (timers, IPIs, softirqs)"
	entryFork    = "a new task's first return (ret_from_fork)"
	entrySignal  = "signal delivery (not an exit)"
	entryResched = "return to user space (rescheduling)"
	entryOther   = "other kernel"
	entryMount   = "mount (mount, move_mount, open_tree, fsopen/fsconfig/fsmount, umount, pivot_root)"
	entryClone   = "clone"
	entryExecve  = "execve"
	entryFutex   = "futex"
	entrySyscall = "system call entry and exit"
	entrySeccomp = "seccomp filter and tracing at system call entry"
)

var syscallGroups = map[string]string{
	"mount": entryMount, "move_mount": entryMount, "open_tree": entryMount, "open_tree_attr": entryMount,
	"fsopen": entryMount, "fsconfig": entryMount, "fsmount": entryMount, "fspick": entryMount,
	"mount_setattr": entryMount, "umount": entryMount, "oldumount": entryMount, "pivot_root": entryMount,
	"clone": entryClone, "clone3": entryClone, "fork": entryClone, "vfork": entryClone,
	"execve": entryExecve, "execveat": entryExecve,
	"futex": entryFutex, "futex_waitv": entryFutex, "futex_wait": entryFutex, "futex_wake": entryFutex,
}

// kernelEntry names how a sample entered the kernel: anything under
// do_exit is the exit (the exit_group system call and fatal signals alike,
// with the teardown of the mount, pid and network namespaces they end);
// otherwise the outermost recognised entry wins, so a page fault or an
// interrupt inside a system call counts as that call. k is innermost first.
func kernelEntry(k []string) string {
	if len(k) == 0 {
		return entryUser
	}
	if slices.Contains(k, "do_exit") {
		return entryExit
	}
	// Signals are delivered on the way back to user space, never inside a
	// system call, so no entry below can be the better name.
	if slices.Contains(k, "arch_do_signal_or_restart") || slices.Contains(k, "get_signal") {
		return entrySignal
	}
	for i := len(k) - 1; i >= 0; i-- {
		f := k[i]
		switch {
		case f == "do_syscall_64":
			if e, ok := syscallEntry(k[:i]); ok {
				return e
			}
		case f == "exc_page_fault" || f == "asm_exc_page_fault":
			return entryFault
		case interrupt(f):
			return entryIRQ
		case f == "ret_from_fork" || f == "ret_from_fork_asm" || f == "schedule_tail":
			return entryFork
		case f == "exit_to_user_mode_loop" || f == "irqentry_exit_to_user_mode":
			return entryResched
		}
	}
	return entryOther
}

// syscallEntry names the system call whose handler is the outermost of
// inner (innermost first: what do_syscall_64 called). The handler is
// __x64_sys_<name> unless the compiler made it a tail call, as it does for
// read (ksys_read), write, mmap (vm_mmap_pgoff), seccomp (do_seccomp): then
// the name comes from the function it jumped to. It returns false when
// do_syscall_64 was on its way out (signals, rescheduling), for the caller
// to go on.
func syscallEntry(inner []string) (string, bool) {
	for len(inner) > 0 && inner[len(inner)-1] == "x64_sys_call" {
		inner = inner[:len(inner)-1]
	}
	if len(inner) == 0 {
		return entrySyscall, true
	}
	f := inner[len(inner)-1]
	switch f {
	case "syscall_trace_enter":
		return entrySeccomp, true
	case "syscall_exit_to_user_mode", "exit_to_user_mode_loop", "arch_do_signal_or_restart", "get_signal",
		"irqentry_exit_to_user_mode", "schedule":
		return "", false
	}
	name, ok := tailCalled[f]
	if !ok {
		name = f
		for _, p := range []string{"__x64_sys_", "__do_sys_", "__se_sys_", "ksys_", "__sys_", "do_sys_", "do_"} {
			if n, ok := strings.CutPrefix(f, p); ok {
				name = n
				break
			}
		}
	}
	if g, ok := syscallGroups[name]; ok {
		return g, true
	}
	return "system call " + name, true
}

// tailCalled are handlers whose names are not the system call's.
var tailCalled = map[string]string{"vm_mmap_pgoff": "mmap", "ksys_mmap_pgoff": "mmap"}

// kernelFrames are the names of a sample's kernel frames, innermost first.
func kernelFrames(s sample) []string {
	var k []string
	for _, f := range s.frames {
		if f.kernel() {
			k = append(k, f.sym)
		}
	}
	return k
}
