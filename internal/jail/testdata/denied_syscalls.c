// Tries every system call the seccomp policy must refuse and prints
// "name errno" for each (errno 0 means the call got through the filter).
// Arguments are harmless or invalid on purpose: a call that reaches the
// kernel fails with EINVAL/EFAULT/EBADF, never EPERM, so EPERM (or ENOSYS
// for clone3) can only come from the filter.
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif

static void try(const char *name, long nr, long a, long b, long c, long d, long e) {
	errno = 0;
	long r = syscall(nr, a, b, c, d, e, 0);
	printf("%s %d\n", name, r == -1 ? errno : 0);
}

#define T(n, ...) try(#n, SYS_##n, __VA_ARGS__)

int main(void) {
	setvbuf(stdout, NULL, _IONBF, 0);
	T(mount, (long)"none", (long)"/box", (long)"tmpfs", 0, 0);
	T(umount2, (long)"/box", 0, 0, 0, 0);
	T(pivot_root, (long)"/box", (long)"/box", 0, 0, 0);
	T(chroot, (long)"/box", 0, 0, 0, 0);
	T(fsopen, (long)"tmpfs", 0, 0, 0, 0);
	T(fsconfig, -1, 0, 0, 0, 0);
	T(fsmount, -1, 0, 0, 0, 0);
	T(fspick, -1, (long)"/", 0, 0, 0);
	T(open_tree, -1, (long)"/", 0, 0, 0);
	T(move_mount, -1, (long)"", -1, (long)"/box", 0);
	T(mount_setattr, -1, (long)"/", 0, 0, 0);
	T(unshare, CLONE_NEWUSER, 0, 0, 0, 0);
	T(setns, -1, 0, 0, 0, 0);
	T(keyctl, 0, 0, 0, 0, 0);
	T(add_key, (long)"user", (long)"x", 0, 0, 0);
	T(request_key, (long)"user", (long)"x", 0, 0, 0);
	T(bpf, 0, 0, 0, 0, 0);
	T(perf_event_open, 0, 0, -1, -1, 0);
	T(userfaultfd, 0, 0, 0, 0, 0);
	T(io_uring_setup, 1, 0, 0, 0, 0);
	T(io_uring_enter, -1, 0, 0, 0, 0);
	T(io_uring_register, -1, 0, 0, 0, 0);
	T(ptrace, 0, 0, 0, 0, 0);
	T(process_vm_readv, 1, 0, 0, 0, 0);
	T(process_vm_writev, 1, 0, 0, 0, 0);
	T(kcmp, 1, 1, 0, 0, 0);
	T(pidfd_getfd, -1, 0, 0, 0, 0);
	T(open_by_handle_at, -1, 0, 0, 0, 0);
	T(name_to_handle_at, -1, 0, 0, 0, 0);
	T(init_module, 0, 0, 0, 0, 0);
	T(finit_module, -1, 0, 0, 0, 0);
	T(delete_module, (long)"x", 0, 0, 0, 0);
	T(kexec_load, 0, 0, 0, 0, 0);
	T(kexec_file_load, -1, -1, 0, 0, 0);
	T(reboot, 0, 0, 0, 0, 0);
	T(swapon, (long)"/box/x", 0, 0, 0, 0);
	T(swapoff, (long)"/box/x", 0, 0, 0, 0);
	T(acct, 0, 0, 0, 0, 0);
	T(syslog, 0, 0, 0, 0, 0);
	T(settimeofday, 0, 0, 0, 0, 0);
	T(clock_settime, 0, 0, 0, 0, 0);
	T(clock_adjtime, 0, 0, 0, 0, 0);
	T(adjtimex, 0, 0, 0, 0, 0);
	T(quotactl, 0, 0, 0, 0, 0);
	T(clone3, 0, 0, 0, 0, 0);
	T(clone, CLONE_NEWUSER, 0, 0, 0, 0);
	T(clone, CLONE_NEWNET, 0, 0, 0, 0);
	T(clone, CLONE_NEWNS, 0, 0, 0, 0);

	// int 0x80: the i386 ABI from a 64-bit process. getpid is 20 there;
	// if the filter let it through it would return our pid.
	long r;
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(20) : "memory");
	printf("int80_getpid %ld\n", r < 0 ? -r : 0);

	// The x32 ABI: the same numbers with bit 30 set.
	errno = 0;
	r = syscall(0x40000000 | SYS_getpid);
	printf("x32_getpid %d\n", r == -1 ? errno : 0);
	return 0;
}
