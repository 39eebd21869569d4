// Reaches for what the host and every other box share through calls the
// seccomp policy must refuse or neutralise, and prints "name errno" for
// each (0: the call succeeded, or was made a no-op). Arguments are valid, so
// that a call the filter lets through really runs: an errno other than the
// filter's EPERM/ENOSYS is the kernel's own answer.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef SYS_cachestat
#define SYS_cachestat 451
#endif
#ifndef SYS_memfd_secret
#define SYS_memfd_secret 447
#endif
#ifndef SYS_quotactl_fd
#define SYS_quotactl_fd 443
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif
#ifndef SYS_set_mempolicy_home_node
#define SYS_set_mempolicy_home_node 450
#endif
#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x8
#endif
#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif
#define SCHED_DEADLINE 6

static void report(const char *name, long r) { printf("%s %d\n", name, r < 0 ? errno : 0); }

#define SC(name, ...) (errno = 0, report(name, syscall(__VA_ARGS__)))

static void sock(const char *name, int family, int type, int proto) {
	errno = 0;
	int fd = socket(family, type, proto);
	report(name, fd);
	if (fd >= 0)
		close(fd);
}

struct sched_attr_v1 {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
};

int main(void) {
	setvbuf(stdout, NULL, _IONBF, 0);
	int fd = open("/usr/bin/env", O_RDONLY);
	int dir = open("/usr/bin", O_RDONLY | O_DIRECTORY);
	if (fd < 0 || dir < 0) {
		perror("open");
		return 1;
	}

	// Kernel AIO contexts come from the host-wide fs.aio-max-nr pool.
	aio_context_t ctx = 0;
	SC("io_setup", SYS_io_setup, 1, &ctx);
	SC("io_submit", SYS_io_submit, ctx, 0, NULL);
	SC("io_getevents", SYS_io_getevents, ctx, 0, 0, NULL, NULL);
	SC("io_destroy", SYS_io_destroy, ctx);

	// Flushing the host's dirty data and evicting its page cache: no-ops.
	SC("sync", SYS_sync);
	SC("syncfs", SYS_syncfs, fd);
	SC("fadvise_dontneed", SYS_fadvise64, fd, 0, 0, POSIX_FADV_DONTNEED);
	char *map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	SC("msync_sync", SYS_msync, map, 4096, MS_SYNC);
	SC("msync_async", SYS_msync, map, 4096, MS_ASYNC);

	// Page-cache residency probes.
	uint64_t range[2] = {0, 0}, cs[5];
	SC("cachestat", SYS_cachestat, fd, range, cs, 0);
	char buf[64];
	struct iovec iov = {buf, sizeof buf};
	SC("preadv2_nowait", SYS_preadv2, fd, &iov, 1, 0, 0, RWF_NOWAIT);
	SC("preadv2", SYS_preadv2, fd, &iov, 1, 0, 0, 0);

	// Change notification and leases on shared files.
	SC("fcntl_notify", SYS_fcntl, dir, F_NOTIFY, DN_ACCESS | DN_MULTISHOT);
	SC("fcntl_setlease", SYS_fcntl, fd, F_SETLEASE, F_RDLCK);
	SC("fcntl_getlease", SYS_fcntl, fd, F_GETLEASE);

	// Transport protocols beyond TCP and UDP.
	sock("socket_tcp", AF_INET, SOCK_STREAM, 0);
	sock("socket_tcp_proto", AF_INET, SOCK_STREAM, IPPROTO_TCP);
	sock("socket_udp6_proto", AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
	sock("socket_mptcp", AF_INET, SOCK_STREAM, IPPROTO_MPTCP);
	sock("socket_mptcp6", AF_INET6, SOCK_STREAM, IPPROTO_MPTCP);
	sock("socket_udplite", AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE);
	sock("socket_sctp", AF_INET, SOCK_STREAM, IPPROTO_SCTP);
	sock("socket_sctp_seqpacket", AF_INET, SOCK_SEQPACKET, 0);
	sock("socket_dccp", AF_INET, SOCK_DCCP, IPPROTO_DCCP);
	sock("socket_ping", AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
	sock("socket_ping6", AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6);
	int tcp = socket(AF_INET, SOCK_STREAM, 0);
	errno = 0;
	report("setsockopt_ulp", setsockopt(tcp, IPPROTO_TCP, TCP_ULP, "tls", 3));
	int one = 1;
	errno = 0;
	report("setsockopt_nodelay", setsockopt(tcp, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));

	// Interrupting CPUs that run other processes.
	SC("membarrier_global_expedited", SYS_membarrier, 2, 0, 0);
	SC("membarrier_query", SYS_membarrier, 0, 0, 0);

	// Siblings that must stay out of reach.
	SC("quotactl_fd", SYS_quotactl_fd, fd, 0, 0, 0);
	SC("fanotify_init", SYS_fanotify_init, 0, 0);
	SC("fanotify_mark", SYS_fanotify_mark, -1, 0, 0, -1, 0);
	SC("add_key", SYS_add_key, "user", "x", "y", 1, -2);
	SC("memfd_secret", SYS_memfd_secret, 0);
	SC("process_madvise", SYS_process_madvise, -1, NULL, 0, 0, 0);
	SC("set_mempolicy", SYS_set_mempolicy, 0, NULL, 0);
	SC("get_mempolicy", SYS_get_mempolicy, NULL, NULL, 0, NULL, 0);
	SC("set_mempolicy_home_node", SYS_set_mempolicy_home_node, 0, 0, 0, 0);
	SC("mbind", SYS_mbind, map, 4096, 0, NULL, 0, 0);
	SC("migrate_pages", SYS_migrate_pages, 1, 0, NULL, NULL);
	SC("move_pages", SYS_move_pages, 1, 0, NULL, NULL, NULL, 0);
	SC("userfaultfd", SYS_userfaultfd, 0);
	SC("name_to_handle_at", SYS_name_to_handle_at, AT_FDCWD, "/usr", buf, buf, 0);

	// Allowed, but the kernel refuses what would reach beyond the box.
	struct sched_param sp = {.sched_priority = 1};
	errno = 0;
	report("sched_fifo", sched_setscheduler(0, SCHED_FIFO, &sp));
	struct sched_attr_v1 sa = {.size = sizeof sa, .policy = SCHED_DEADLINE,
	                           .runtime = 1000000, .deadline = 10000000, .period = 10000000};
	SC("sched_deadline", SYS_sched_setattr, 0, &sa, 0);
	SC("ioprio_rt", SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, (1 << 13) | 0 /* RT, level 0 */);
	struct rlimit rl;
	getrlimit(RLIMIT_MEMLOCK, &rl);
	printf("rlimit_memlock %llu\n", (unsigned long long)rl.rlim_cur);
	getrlimit(RLIMIT_RTPRIO, &rl);
	printf("rlimit_rtprio %llu\n", (unsigned long long)rl.rlim_cur);
	return 0;
}
