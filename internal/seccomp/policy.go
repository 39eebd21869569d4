// Package seccomp owns runbox's system-call policy: the policy as data, and a
// pure function that compiles it into a classic BPF program for the kernel's
// seccomp filter. Installing the program is not done here: the in-box init
// receives the compiled bytes and installs them right before execve, so that
// this package stays free of process side effects and can be golden-tested.
package seccomp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// Errno values the policy returns. They are the Linux numbers; they are the
// same on every architecture runbox supports.
const (
	EPERM  = 1
	ENOSYS = 38
)

// Namespace-creating clone flags. clone(2) with any of them is refused: a box
// must not make namespaces of its own (new user namespaces are the usual first
// step of kernel exploits, CVE-2022-0185, CVE-2023-32233 among them).
const (
	cloneNewNS     = 0x00020000
	cloneNewCgroup = 0x02000000
	cloneNewUTS    = 0x04000000
	cloneNewIPC    = 0x08000000
	cloneNewUser   = 0x10000000
	cloneNewPID    = 0x20000000
	cloneNewNet    = 0x40000000

	// CloneNamespaceFlags is every namespace flag clone(2) accepts.
	CloneNamespaceFlags = cloneNewNS | cloneNewCgroup | cloneNewUTS | cloneNewIPC | cloneNewUser | cloneNewPID | cloneNewNet
)

// Socket families, types and protocols named by the policy.
const (
	afUnix    = 1
	afInet    = 2
	afInet6   = 10
	afNetlink = 16

	sockStream   = 1
	sockDgram    = 2
	sockRaw      = 3
	sockPacket   = 10
	sockTypeMask = 0xf // the low bits of type; the rest are SOCK_NONBLOCK/SOCK_CLOEXEC

	ipprotoIP  = 0
	ipprotoTCP = 6
	ipprotoUDP = 17

	netlinkRoute = 0

	// setsockopt(IPPROTO_TCP, TCP_ULP) attaches an upper-layer protocol
	// (kTLS, espintcp) to a TCP socket: kernel code no toolchain needs and
	// a source of use-after-frees (CVE-2023-0461 in the ULP core).
	solTCP = ipprotoTCP
	tcpULP = 31
)

// fcntl commands refused on top of the box's private view of the system
// directories: F_NOTIFY (dnotify) reports accesses to a directory's files
// as they happen, F_SETLEASE lets the holder stall other openers of a file
// for lease-break-time seconds.
const (
	fSetLease = 1024
	fNotify   = 1026
)

// Other flags named by the policy.
const (
	// RWF_NOWAIT makes preadv2 fail with EAGAIN instead of reading from
	// disk: a direct probe of whether a file's pages are in the page
	// cache, that is, whether someone read the file lately.
	rwfNowait = 0x8
	// MEMBARRIER_CMD_GLOBAL_EXPEDITED interrupts (IPI) every CPU running a
	// process that registered for it, whoever owns that process.
	membarrierGlobalExpedited = 0x2
)

// Terminal ioctls that inject input or drive the console: TIOCSTI pushes
// bytes into a terminal's input queue (the classic sandbox escape through a
// shared tty, CVE-2016-7545 and CVE-2017-5226); TIOCLINUX can do the same on
// virtual consoles. TIOCSETD attaches a line discipline to a terminal (a
// session command may have one): rarely used kernel code, loaded on demand
// where dev.tty.ldisc_autoload is set, with a history of local privilege
// escalations through a pty (n_hdlc CVE-2017-2636, n_gsm CVE-2023-6546).
const (
	tiocsti   = 0x5412
	tioclinux = 0x541c
	tiocsetd  = 0x5423
)

// An ArgCheck says which values of one 32-bit argument are allowed. Arguments
// are compared on their low 32 bits only: every argument checked here is an
// int or unsigned int in the kernel, which truncates it the same way (so a
// value such as IPPROTO_MPTCP, 262, is compared whole, not on 8 bits).
type ArgCheck struct {
	Arg int // 0-based argument index

	// Mask, when not zero, is ANDed with the argument before OneOf or
	// NoneOf compare it: socket(2)'s type carries SOCK_NONBLOCK and
	// SOCK_CLOEXEC above the type proper.
	Mask uint32

	// Exactly one of these is used.
	OneOf    []uint32 // allowed values
	NoneOf   []uint32 // refused values (everything else is allowed)
	MaskZero uint32   // allowed when arg&MaskZero == 0
}

// A Rule allows a system call only when all of its checks pass; otherwise the
// call fails with the policy's default errno.
type Rule struct {
	Checks []ArgCheck
	// Alternatives, when set, allow the call if any one of them passes; used
	// for socket(2), where what is allowed depends on the family.
	Alternatives [][]ArgCheck
}

// Policy is the whole filter as data.
type Policy struct {
	// Allow lists system calls allowed with any arguments.
	Allow []string
	// Conditional lists system calls allowed only when their Rule passes.
	Conditional map[string]Rule
	// Errno lists system calls that fail with a specific errno instead of
	// the default (clone3 answers ENOSYS so that libc falls back to clone,
	// whose flags the filter can read; clone3 passes them in memory). An
	// errno of 0 makes the call a no-op that reports success.
	Errno map[string]uint16
	// DefaultErrno is returned for every other call, for a foreign
	// architecture (int 0x80 from a 64-bit process) and for the x32 ABI.
	DefaultErrno uint16
}

// Default is runbox's policy: an allowlist of what ordinary programs and the
// common toolchains (CPython, Node, the JVM, gcc, Go, Perl) use, every other
// call answered with EPERM. Among the calls left out on purpose: mount and the
// new mount API, pivot_root, chroot, unshare, setns, keyctl, add_key,
// request_key, bpf, perf_event_open, userfaultfd, io_uring_*, ptrace,
// process_vm_readv/writev, kcmp, pidfd_getfd, open_by_handle_at,
// name_to_handle_at, module loading, kexec, reboot, swapon/swapoff, acct,
// syslog, the clock setters, quotactl and quotactl_fd, iopl/ioperm,
// memfd_secret, fanotify_*, process_madvise, and the NUMA calls
// (set_mempolicy, mbind, migrate_pages, move_pages: nothing in a box needs
// them, and the last two act on other processes' pages).
//
// A box must also not reach what the host and every other box share, nor
// watch them:
//
//   - cachestat is left out, and preadv2 refuses RWF_NOWAIT: both tell
//     whether a file's pages are in the page cache, that is, whether someone
//     read it lately (cachestat does so for any readable file before Linux
//     6.14; RWF_NOWAIT, answering EAGAIN for a page not cached, on every
//     kernel). mincore stays: since Linux 5.0 it reports residency only for
//     mappings of files the caller owns or may write, and reports every
//     page of any other file as resident; a box owns nothing of the host
//     and sees it on read-only mounts.
//   - io_setup and the rest of kernel AIO answer ENOSYS, as on a kernel
//     built without it: each context takes slots from the host-wide
//     fs.aio-max-nr pool. glibc's POSIX aio uses threads, not these calls.
//   - sync, syncfs and fadvise64 are no-ops that succeed: sync flushes every
//     filesystem of the host, syncfs the whole filesystem of a descriptor,
//     and POSIX_FADV_DONTNEED evicts a shared file's pages from the host's
//     page cache (the eviction half of a flush+reload probe; through
//     overlayfs it reaches the host's file). A box loses nothing: all it
//     may write lives in memory (tmpfs, memfd), where syncing does nothing.
//     fsync, fdatasync and sync_file_range stay: they act on the
//     descriptor's file, and every file a box can open is on its tmpfs, on
//     its private read-only overlay of the system directories (overlayfs
//     never syncs a lower layer, and an overlay file's own page cache is
//     empty) or a device. msync stays: MS_SYNC syncs the file under a
//     shared mapping, but mmap drops VM_SHARED from a mapping of a file
//     not open for writing, and a box can open no host file for writing.
//   - fcntl refuses F_NOTIFY and F_SETLEASE (the box's view of the system
//     directories is private already; this is defence in depth).
//   - socket(AF_INET/AF_INET6) makes only TCP and UDP sockets: not MPTCP,
//     SCTP, DCCP, UDP-Lite or ICMP "ping" sockets, which no toolchain needs
//     and whose kernel code is attack surface; setsockopt refuses TCP_ULP.
//   - membarrier refuses MEMBARRIER_CMD_GLOBAL_EXPEDITED, which interrupts
//     every CPU running a (host) process registered for it.
//
// Left allowed after review: readahead (it only warms the cache); ioprio_set
// (the real-time class needs CAP_SYS_ADMIN or CAP_SYS_NICE in the host's
// namespace, and it reaches only processes of the box's pid namespace);
// sched_setattr and sched_setscheduler (real-time and deadline policies need
// CAP_SYS_NICE in the host's namespace or an RLIMIT_RTPRIO above 0);
// mlock and mlockall (bounded by RLIMIT_MEMLOCK per process; locking a
// mapping of a system file pins the host's page cache, so that limit must
// stay small); pidfd_open (the box's pid namespace only); sysinfo (glibc's
// sysconf(_SC_PHYS_PAGES) needs it, though it shows host-wide load and free
// memory).
func Default() Policy {
	return Policy{
		Allow: []string{
			"accept", "accept4", "access", "alarm", "arch_prctl", "bind", "brk",
			"capget", "capset", "chdir", "chmod", "chown",
			"clock_getres", "clock_gettime", "clock_nanosleep", "close", "close_range",
			"connect", "copy_file_range", "creat", "dup", "dup2", "dup3",
			"epoll_create", "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait",
			"eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group",
			"faccessat", "faccessat2", "fallocate", "fchdir", "fchmod",
			"fchmodat", "fchmodat2", "fchown", "fchownat", "fdatasync",
			"fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr",
			"fstat", "fstatfs", "fsync", "ftruncate", "futex", "futex_requeue",
			"futex_wait", "futex_waitv", "futex_wake", "futimesat", "get_robust_list",
			"getcpu", "getcwd", "getdents", "getdents64", "getegid", "geteuid",
			"getgid", "getgroups", "getitimer", "getpeername", "getpgid", "getpgrp",
			"getpid", "getppid", "getpriority", "getrandom", "getresgid", "getresuid",
			"getrlimit", "getrusage", "getsid", "getsockname", "getsockopt",
			"gettid", "gettimeofday", "getuid", "getxattr", "getxattrat",
			"inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch",
			"ioprio_get", "ioprio_set", "kill", "landlock_add_rule",
			"landlock_create_ruleset", "landlock_restrict_self", "lchown", "lgetxattr",
			"link", "linkat", "listen", "listxattr", "listxattrat", "llistxattr",
			"lremovexattr", "lseek", "lsetxattr", "lstat", "madvise", "map_shadow_stack",
			"memfd_create", "mincore", "mkdir", "mkdirat", "mknod", "mknodat",
			"mlock", "mlock2", "mlockall", "mmap", "mprotect", "mq_getsetattr",
			"mq_notify", "mq_open", "mq_timedreceive", "mq_timedsend", "mq_unlink",
			"mremap", "mseal", "msgctl", "msgget", "msgrcv", "msgsnd", "msync",
			"munlock", "munlockall", "munmap", "nanosleep", "newfstatat", "open",
			"openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2",
			"pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll", "prctl",
			"pread64", "preadv", "prlimit64", "pselect6", "pwrite64",
			"pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv",
			"recvfrom", "recvmmsg", "recvmsg", "remap_file_pages", "removexattr",
			"removexattrat", "rename", "renameat", "renameat2", "restart_syscall",
			"rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask",
			"rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
			"rt_tgsigqueueinfo", "sched_get_priority_max", "sched_get_priority_min",
			"sched_getaffinity", "sched_getattr", "sched_getparam", "sched_getscheduler",
			"sched_rr_get_interval", "sched_setaffinity", "sched_setattr",
			"sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select",
			"semctl", "semget", "semop", "semtimedop", "sendfile", "sendmmsg", "sendmsg",
			"sendto", "set_robust_list", "set_tid_address", "setfsgid", "setfsuid",
			"setgid", "setgroups", "setitimer", "setpgid", "setpriority", "setregid",
			"setresgid", "setresuid", "setreuid", "setrlimit", "setsid",
			"setuid", "setxattr", "setxattrat", "shmat", "shmctl", "shmdt", "shmget",
			"shutdown", "sigaltstack", "signalfd", "signalfd4", "splice", "stat",
			"statfs", "statx", "symlink", "symlinkat", "sync_file_range",
			"sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete",
			"timer_getoverrun", "timer_gettime", "timer_settime", "timerfd_create",
			"timerfd_gettime", "timerfd_settime", "times", "tkill", "truncate", "umask",
			"uname", "unlink", "unlinkat", "utime", "utimensat", "utimes", "vfork",
			"wait4", "waitid", "write", "writev",
		},
		Conditional: map[string]Rule{
			// Threads and fork, never new namespaces.
			"clone": {Checks: []ArgCheck{{Arg: 0, MaskZero: CloneNamespaceFlags}}},
			"ioctl": {Checks: []ArgCheck{{Arg: 1, NoneOf: []uint32{tiocsti, tioclinux, tiocsetd}}}},
			// The values Docker's default profile allows: plain Linux, UNAME26,
			// ADDR_NO_RANDOMIZE and the query. Others (READ_IMPLIES_EXEC…)
			// weaken memory protections.
			"personality": {Checks: []ArgCheck{{Arg: 0, OneOf: []uint32{0x0, 0x8, 0x20000, 0x20008, 0xffffffff}}}},
			// Unix sockets but not raw or packet ones; IPv4 and IPv6 only as
			// TCP and UDP (the box's network namespace has only loopback
			// anyway); netlink only for NETLINK_ROUTE, which libc's
			// getifaddrs reads (changing routes needs CAP_NET_ADMIN, which
			// the box does not have). AF_PACKET, AF_VSOCK, AF_ALG and every
			// other family are refused. The type is checked as well as the
			// protocol: protocol 0 with SOCK_SEQPACKET or SOCK_DCCP picks
			// SCTP or DCCP when their modules are loaded.
			"socket": {Alternatives: [][]ArgCheck{
				{{Arg: 0, OneOf: []uint32{afUnix}}, {Arg: 1, Mask: sockTypeMask, NoneOf: []uint32{sockRaw, sockPacket}}},
				{
					{Arg: 0, OneOf: []uint32{afInet, afInet6}},
					{Arg: 1, Mask: sockTypeMask, OneOf: []uint32{sockStream, sockDgram}},
					{Arg: 2, OneOf: []uint32{ipprotoIP, ipprotoTCP, ipprotoUDP}},
				},
				{{Arg: 0, OneOf: []uint32{afNetlink}}, {Arg: 2, OneOf: []uint32{netlinkRoute}}},
			}},
			"socketpair": {Checks: []ArgCheck{{Arg: 0, OneOf: []uint32{afUnix}}}},
			"setsockopt": {Alternatives: [][]ArgCheck{
				{{Arg: 1, NoneOf: []uint32{solTCP}}},
				{{Arg: 2, NoneOf: []uint32{tcpULP}}},
			}},
			"fcntl":      {Checks: []ArgCheck{{Arg: 1, NoneOf: []uint32{fNotify, fSetLease}}}},
			"preadv2":    {Checks: []ArgCheck{{Arg: 5, MaskZero: rwfNowait}}},
			"membarrier": {Checks: []ArgCheck{{Arg: 0, NoneOf: []uint32{membarrierGlobalExpedited}}}},
		},
		Errno: map[string]uint16{
			"clone3": ENOSYS,

			"io_setup": ENOSYS, "io_submit": ENOSYS, "io_getevents": ENOSYS,
			"io_pgetevents": ENOSYS, "io_cancel": ENOSYS, "io_destroy": ENOSYS,

			"sync": 0, "syncfs": 0, "fadvise64": 0,
		},
		DefaultErrno: EPERM,
	}
}

// Instruction is one classic BPF instruction, laid out as the kernel's
// struct sock_filter.
type Instruction struct {
	Code uint16
	Jt   uint8
	Jf   uint8
	K    uint32
}

// Program is a compiled filter.
type Program []Instruction

// Bytes encodes the program in the kernel's in-memory layout (host byte
// order, which is little-endian on every architecture runbox supports).
func (p Program) Bytes() []byte {
	b := make([]byte, 0, 8*len(p))
	for _, in := range p {
		b = binary.LittleEndian.AppendUint16(b, in.Code)
		b = append(b, in.Jt, in.Jf)
		b = binary.LittleEndian.AppendUint32(b, in.K)
	}
	return b
}

// Decode is the inverse of Bytes.
func Decode(b []byte) (Program, error) {
	if len(b)%8 != 0 {
		return nil, fmt.Errorf("decode filter: length %d is not a multiple of 8", len(b))
	}
	p := make(Program, len(b)/8)
	for i := range p {
		c := b[8*i:]
		p[i] = Instruction{binary.LittleEndian.Uint16(c), c[2], c[3], binary.LittleEndian.Uint32(c[4:])}
	}
	return p, nil
}

// BPF opcodes and seccomp return values (linux/filter.h, linux/seccomp.h).
const (
	bpfLD   = 0x00
	bpfJMP  = 0x05
	bpfRET  = 0x06
	bpfALU  = 0x04
	bpfW    = 0x00
	bpfABS  = 0x20
	bpfK    = 0x00
	bpfJEQ  = 0x10
	bpfJGE  = 0x30
	bpfJSET = 0x40
	bpfJA   = 0x00
	bpfAND  = 0x50

	RetAllow = 0x7fff0000
	RetErrno = 0x00050000

	// struct seccomp_data offsets.
	offNr   = 0
	offArch = 4
	offArgs = 16

	// MaxInstructions is the kernel's BPF_MAXINSNS.
	MaxInstructions = 4096
)

// ErrUnsupported is returned for an architecture runbox has no table for.
var ErrUnsupported = errors.New("seccomp: architecture not supported")

// Build compiles a policy for the native architecture. It is pure: the same
// policy always gives the same program.
func Build(p Policy) (Program, error) {
	if nativeArch == 0 {
		return nil, ErrUnsupported
	}
	return build(p, nativeArch, syscallNumbers, x32Bit)
}

func build(p Policy, arch uint32, numbers map[string]uint32, x32 uint32) (Program, error) {
	nr := func(name string) (uint32, error) {
		n, ok := numbers[name]
		if !ok {
			return 0, fmt.Errorf("seccomp: unknown system call %q", name)
		}
		return n, nil
	}
	deny := RetErrno | uint32(p.DefaultErrno)
	prog := Program{
		// A filter written for one ABI must not be read with another's
		// numbers: a foreign architecture (i386 through int 0x80) and the x32
		// ABI (the x32 bit set in nr) are refused outright.
		ld(offArch),
		jeq(arch, 1, 0),
		ret(deny),
		ld(offNr),
	}
	if x32 != 0 {
		prog = append(prog, Instruction{bpfJMP | bpfJGE | bpfK, 0, 1, x32}, ret(deny))
	}

	names := make([]string, 0, len(p.Errno))
	for name := range p.Errno {
		if _, dup := p.Conditional[name]; dup {
			return nil, fmt.Errorf("seccomp: %s has both an errno and a rule", name)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		n, err := nr(name)
		if err != nil {
			return nil, err
		}
		prog = append(prog, jeq(n, 0, 1), ret(RetErrno|uint32(p.Errno[name])))
	}

	names = names[:0]
	for name := range p.Conditional {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		n, err := nr(name)
		if err != nil {
			return nil, err
		}
		block, err := ruleBlock(p.Conditional[name], deny)
		if err != nil {
			return nil, fmt.Errorf("seccomp: rule for %s: %w", name, err)
		}
		if len(block) > 255 {
			return nil, fmt.Errorf("seccomp: rule for %s is too long", name)
		}
		prog = append(prog, jeq(n, 0, uint8(len(block))))
		prog = append(prog, block...)
	}

	allowed := make([]uint32, 0, len(p.Allow))
	seen := map[uint32]bool{}
	for _, name := range p.Allow {
		n, err := nr(name)
		if err != nil {
			return nil, err
		}
		if _, dup := p.Conditional[name]; dup {
			return nil, fmt.Errorf("seccomp: %s is both allowed and conditional", name)
		}
		if _, dup := p.Errno[name]; dup {
			return nil, fmt.Errorf("seccomp: %s is both allowed and given an errno", name)
		}
		if !seen[n] {
			seen[n] = true
			allowed = append(allowed, n)
		}
	}
	sort.Slice(allowed, func(i, j int) bool { return allowed[i] < allowed[j] })
	// The allowed calls form a binary search tree on the number. The kernel
	// emulates the filter once for every system call number when it is
	// installed, to cache the verdict of calls that do not depend on their
	// arguments (Linux 5.11+): a tree keeps that, and every uncached call,
	// to a dozen comparisons instead of hundreds.
	prog = append(prog, tree(allowed, deny)...)
	if len(prog) > MaxInstructions {
		return nil, fmt.Errorf("seccomp: program has %d instructions, more than %d", len(prog), MaxInstructions)
	}
	return prog, nil
}

// leafSize is how many calls a leaf of the tree compares one by one.
const leafSize = 4

// tree compiles a sorted list of allowed numbers (in the accumulator) into a
// search tree that returns allow for a listed number and deny otherwise.
func tree(nums []uint32, deny uint32) Program {
	if len(nums) <= leafSize {
		var p Program
		for _, n := range nums {
			p = append(p, jeq(n, 0, 1), ret(RetAllow))
		}
		return append(p, ret(deny))
	}
	mid := len(nums) / 2
	left, right := tree(nums[:mid], deny), tree(nums[mid:], deny)
	// jge: a number at or above nums[mid] takes the JA to the right half
	// (JA reaches any distance; conditional jumps only 255).
	p := Program{
		{bpfJMP | bpfJGE | bpfK, 0, 1, nums[mid]},
		{bpfJMP | bpfJA, 0, 0, uint32(len(left))},
	}
	p = append(p, left...)
	return append(p, right...)
}

// ruleBlock compiles a rule into instructions that always end in a return, so
// that the accumulator they clobber is never read again. Each alternative
// falls through to the next one when a check fails; the last falls through to
// deny.
func ruleBlock(r Rule, deny uint32) (Program, error) {
	alts := r.Alternatives
	if len(r.Checks) > 0 {
		alts = append([][]ArgCheck{r.Checks}, alts...)
	}
	if len(alts) == 0 {
		return nil, errors.New("no checks")
	}
	var out Program
	for _, alt := range alts {
		var block Program
		var fails []fixup
		for _, c := range alt {
			ins, f, err := checkBlock(c)
			if err != nil {
				return nil, err
			}
			for _, x := range f {
				x.at += len(block)
				fails = append(fails, x)
			}
			block = append(block, ins...)
		}
		block = append(block, ret(RetAllow))
		for _, x := range fails {
			// Jump to the first instruction after this alternative.
			d := len(block) - x.at - 1
			switch x.field {
			case 't':
				if d > 255 {
					return nil, errors.New("check too long")
				}
				block[x.at].Jt = uint8(d)
			case 'f':
				if d > 255 {
					return nil, errors.New("check too long")
				}
				block[x.at].Jf = uint8(d)
			case 'k':
				block[x.at].K = uint32(d)
			}
		}
		out = append(out, block...)
	}
	return append(out, ret(deny)), nil
}

// A fixup names a jump whose failing branch still has to be pointed at the
// end of its alternative: field t or f of a conditional jump, or k of JA.
type fixup struct {
	at    int
	field byte
}

// checkBlock returns the instructions for one argument check; a passing check
// falls through to the instruction after them.
func checkBlock(c ArgCheck) (Program, []fixup, error) {
	if c.Arg < 0 || c.Arg > 5 {
		return nil, nil, fmt.Errorf("argument %d out of range", c.Arg)
	}
	prog := Program{ld(uint32(offArgs + 8*c.Arg))}
	if c.Mask != 0 {
		if len(c.OneOf) == 0 && len(c.NoneOf) == 0 {
			return nil, nil, errors.New("mask without values")
		}
		prog = append(prog, Instruction{bpfALU | bpfAND | bpfK, 0, 0, c.Mask})
	}
	var fails []fixup
	switch {
	case len(c.OneOf) > 0:
		// jeq v1 → pass; jeq v2 → pass; …; ja fail.
		n := len(c.OneOf)
		for i, v := range c.OneOf {
			prog = append(prog, jeq(v, uint8(n-i), 0))
		}
		fails = append(fails, fixup{len(prog), 'k'})
		prog = append(prog, Instruction{bpfJMP | bpfJA, 0, 0, 0})
	case len(c.NoneOf) > 0:
		for _, v := range c.NoneOf {
			fails = append(fails, fixup{len(prog), 't'})
			prog = append(prog, jeq(v, 0, 0))
		}
	case c.MaskZero != 0:
		fails = append(fails, fixup{len(prog), 't'})
		prog = append(prog, Instruction{bpfJMP | bpfJSET | bpfK, 0, 0, c.MaskZero})
	default:
		return nil, nil, errors.New("empty check")
	}
	return prog, fails, nil
}

func ld(off uint32) Instruction { return Instruction{bpfLD | bpfW | bpfABS, 0, 0, off} }
func ret(v uint32) Instruction  { return Instruction{bpfRET | bpfK, 0, 0, v} }
func jeq(v uint32, jt, jf uint8) Instruction {
	return Instruction{bpfJMP | bpfJEQ | bpfK, jt, jf, v}
}
