package main

import (
	"strings"
	"testing"
)

const boxinitPkg = "github.com/runbox-dev/runbox/internal/jail/boxinit."

// stack turns "a;b;c" (outermost first, as people write stacks) into the
// innermost-first function list the classifiers take; "boxinit." names get
// their import path.
func stack(s string) []string {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ";")
	out := make([]string, len(parts))
	for i, p := range parts {
		if n, ok := strings.CutPrefix(p, "boxinit."); ok {
			p = boxinitPkg + n
		}
		out[len(parts)-1-i] = p
	}
	return out
}

func TestKernelEntry(t *testing.T) {
	for _, tc := range []struct {
		name, stack, want string
	}{
		{"user only", "", entryUser},
		{"mount", "entry_SYSCALL_64_after_hwframe;do_syscall_64;__x64_sys_mount;path_mount", entryMount},
		{"dispatcher", "entry_SYSCALL_64_after_hwframe;do_syscall_64;x64_sys_call;__x64_sys_clone3;kernel_clone", entryClone},
		{"tail call", "entry_SYSCALL_64_after_hwframe;do_syscall_64;ksys_read;vfs_read", "system call read"},
		{"mmap", "entry_SYSCALL_64_after_hwframe;do_syscall_64;vm_mmap_pgoff;do_mmap", "system call mmap"},
		{"seccomp filter", "entry_SYSCALL_64_after_hwframe;do_syscall_64;syscall_trace_enter;__seccomp_filter", entrySeccomp},
		{"fault in a syscall", "entry_SYSCALL_64_after_hwframe;do_syscall_64;__x64_sys_read;asm_exc_page_fault;exc_page_fault", "system call read"},
		{"fault", "asm_exc_page_fault;exc_page_fault;do_user_addr_fault", entryFault},
		{"exit_group", "entry_SYSCALL_64_after_hwframe;do_syscall_64;__x64_sys_exit_group;do_group_exit;do_exit;exit_mmap", entryExit},
		{"fatal signal", "entry_SYSCALL_64_after_hwframe;do_syscall_64;exit_to_user_mode_loop;arch_do_signal_or_restart;get_signal;do_group_exit;do_exit", entryExit},
		{"signal", "entry_SYSCALL_64_after_hwframe;do_syscall_64;exit_to_user_mode_loop;arch_do_signal_or_restart;x64_setup_rt_frame", entrySignal},
		{"resched", "entry_SYSCALL_64_after_hwframe;do_syscall_64;exit_to_user_mode_loop;schedule", entryResched},
		{"bare entry", "entry_SYSCALL_64_after_hwframe;do_syscall_64", entrySyscall},
		{"interrupt", "asm_sysvec_apic_timer_interrupt;sysvec_apic_timer_interrupt;hrtimer_interrupt", entryIRQ},
		{"new task", "ret_from_fork_asm;ret_from_fork;schedule_tail", entryFork},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := kernelEntry(stack(tc.stack)); got != tc.want {
				t.Errorf("kernelEntry(%s) = %q, want %q", tc.stack, got, tc.want)
			}
		})
	}
}

func TestPhaseOf(t *testing.T) {
	expand := map[string]bool{"buildRoot": true, "spawn": true}
	main := "runtime.goexit;runtime.main;main.main;boxinit.Main"
	for _, tc := range []struct {
		name, stack, anchor, kentry, want string
	}{
		{"step of run", main + ";boxinit.run;boxinit.lockDown;unix.Prctl;internal/runtime/syscall/linux.Syscall6", "run", "system call prctl", "lockDown"},
		{"expanded", main + ";boxinit.run;boxinit.buildRoot;boxinit.maskProc;os.ReadFile", "run", entryUser, "buildRoot → maskProc"},
		{"expanded, direct call", main + ";boxinit.run;boxinit.buildRoot;golang.org/x/sys/unix.Mount", "run", entryMount, "buildRoot → unix.Mount"},
		{"direct call of run", main + ";boxinit.run;golang.org/x/sys/unix.Unshare", "run", "system call unshare", "run → unix.Unshare"},
		{"before run", main + ";signal.Notify", "run", entryUser, "Main → signal.Notify"},
		{"spawner", main + ";boxinit.spawnerMain;boxinit.spawn;boxinit.asBoxRoot;boxinit.spawn.func1;syscall.ForkExec", "spawnerMain", entryClone, "spawn → asBoxRoot"},
		{"goroutine", "runtime.goexit;boxinit.forwardSignals.func1;runtime.chanrecv", "run", entryUser, "forwardSignals.func1 (outside run)"},
		{"runtime", "runtime.mstart;runtime.mstart0;runtime.schedule", "run", entryUser, "Go runtime: runtime.mstart"},
		{"runtime goroutine", "runtime.goexit;runtime.bgsweep;runtime.gopark", "run", entryUser, "Go runtime: runtime.bgsweep"},
		{"no user stack", "", "run", entryExit, phaseKernelOnly + entryExit},
		{"execve leaves one frame", "internal/runtime/syscall/linux.Syscall6", "run", entryExecve, phaseKernelOnly + entryExecve},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := phaseOf(stack(tc.stack), tc.anchor, expand, tc.kentry); got != tc.want {
				t.Errorf("phaseOf(%s) = %q, want %q", tc.stack, got, tc.want)
			}
		})
	}
}

func TestRoleOf(t *testing.T) {
	const bench, program = 100, "true"
	halt := []frame{{sym: "pv_native_safe_halt", dso: "[kernel.kallsyms]"}, {sym: "do_idle", dso: "[kernel.kallsyms]"}}
	irq := append([]frame{{sym: "handle_softirqs", dso: "[kernel.kallsyms]"}}, halt...)
	for _, tc := range []struct {
		name string
		s    sample
		want string
	}{
		{"supervisor", sample{owner: ownerBench, pid: bench, comm: "jail.test"}, roleSupervisor},
		{"supervisor's fork before exec", sample{owner: ownerBench, pid: 101, comm: "jail.test"}, roleBenchOther},
		{"init", sample{owner: ownerBench, pid: 102, comm: "exe"}, roleInit},
		{"spawner", sample{owner: ownerBench, pid: 103, comm: "11"}, roleSpawner},
		{"program", sample{owner: ownerBench, pid: 104, comm: "true"}, roleProgram},
		{"someone else's box", sample{owner: ownerOther, pid: 105, comm: "exe"}, roleOther},
		{"kernel thread", sample{owner: ownerKernel, pid: 3, comm: "kworker/0:1-events"}, roleKernel},
		{"idle", sample{owner: ownerIdle, frames: halt}, roleIdle},
		{"interrupt on idle", sample{owner: ownerIdle, frames: irq}, roleIdleIRQ},
		{"gone", sample{owner: ownerGone, pid: -1}, roleGone},
		{"perf", sample{owner: ownerPerf, comm: "perf"}, rolePerf},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := roleOf(tc.s, bench, program); got != tc.want {
				t.Errorf("roleOf = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestKernelGroup(t *testing.T) {
	for comm, want := range map[string]string{
		"kworker/1:4-cgroup_destroy": "kworker (cgroup_destroy…)",
		"kworker/u8:3+netns":         "kworker (netns…)",
		"kworker/0:2":                "kworker",
		"ksoftirqd/0":                "ksoftirqd",
		"rcu_exp_gp_kthr":            "rcu",
		"kdamond.0":                  "kdamond",
	} {
		if got := kernelGroup(comm); got != want {
			t.Errorf("kernelGroup(%q) = %q, want %q", comm, got, want)
		}
	}
}
