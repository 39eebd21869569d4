//go:build linux && amd64

package seccomp

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// seccompData mirrors struct seccomp_data.
type seccompData struct {
	nr   uint32
	arch uint32
	args [6]uint64
}

func (d seccompData) word(off uint32) uint32 {
	switch {
	case off == offNr:
		return d.nr
	case off == offArch:
		return d.arch
	case off >= offArgs && off < offArgs+48:
		a := d.args[(off-offArgs)/8]
		if (off-offArgs)%8 == 0 {
			return uint32(a)
		}
		return uint32(a >> 32)
	}
	panic(fmt.Sprintf("load from offset %d", off))
}

// run interprets a classic BPF program the way the kernel does for seccomp.
func run(t *testing.T, p Program, d seccompData) uint32 {
	t.Helper()
	var a uint32
	for pc := 0; pc < len(p); pc++ {
		in := p[pc]
		switch in.Code {
		case bpfLD | bpfW | bpfABS:
			a = d.word(in.K)
		case bpfALU | bpfAND | bpfK:
			a &= in.K
		case bpfJMP | bpfJA:
			pc += int(in.K)
		case bpfJMP | bpfJEQ | bpfK:
			if a == in.K {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case bpfJMP | bpfJGE | bpfK:
			if a >= in.K {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case bpfJMP | bpfJSET | bpfK:
			if a&in.K != 0 {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case bpfRET | bpfK:
			return in.K
		default:
			t.Fatalf("unknown opcode %#x at %d", in.Code, pc)
		}
	}
	t.Fatal("program fell off its end")
	return 0
}

func call(name string, args ...uint64) seccompData {
	d := seccompData{nr: syscallNumbers[name], arch: nativeArch}
	copy(d.args[:], args)
	return d
}

const (
	allow  = RetAllow
	eperm  = RetErrno | EPERM
	enosys = RetErrno | ENOSYS
	noop   = RetErrno // errno 0: the call is skipped and returns 0
)

func TestDefaultPolicyDecisions(t *testing.T) {
	prog, err := Build(Default())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		d    seccompData
		want uint32
	}{
		{"read", call("read", 0, 0, 1), allow},
		{"execve", call("execve"), allow},
		{"fork as glibc does it", call("clone", 0x01200011), allow},
		{"thread as pthread_create does it", call("clone", 0x3d0f00), allow},
		{"clone new user namespace", call("clone", 0x10000000|17), eperm},
		{"clone new net namespace", call("clone", 0x40000000), eperm},
		{"clone new mount namespace", call("clone", 0x00020000), eperm},
		{"clone namespace flag in high bits ignored by kernel", call("clone", 1<<40), allow},
		{"clone3", call("clone3"), enosys},
		{"unshare", call("unshare", 0), eperm},
		{"tcp socket", call("socket", 2, 1, 0), allow},
		{"udp6 socket", call("socket", 10, 2|0x80000, 0), allow},
		{"unix socket", call("socket", 1, 1, 0), allow},
		{"raw socket", call("socket", 2, 3, 1), eperm},
		{"raw socket with SOCK_CLOEXEC", call("socket", 2, 3|0x80000, 1), eperm},
		{"raw ipv6 socket", call("socket", 10, 3, 58), eperm},
		{"SOCK_PACKET", call("socket", 2, 10, 0), eperm},
		{"AF_PACKET", call("socket", 17, 3, 0), eperm},
		{"AF_VSOCK", call("socket", 40, 1, 0), eperm},
		{"AF_ALG", call("socket", 38, 5, 0), eperm},
		{"netlink route", call("socket", 16, 3, 0), allow},
		{"netlink audit", call("socket", 16, 3, 9), eperm},
		{"socketpair unix", call("socketpair", 1, 1, 0), allow},
		{"socketpair inet", call("socketpair", 2, 1, 0), eperm},
		{"ioctl FIONREAD", call("ioctl", 0, 0x541b), allow},
		{"ioctl TIOCSTI", call("ioctl", 0, 0x5412), eperm},
		{"ioctl TIOCSTI with high bits", call("ioctl", 0, 1<<32|0x5412), eperm},
		{"ioctl TIOCLINUX", call("ioctl", 0, 0x541c), eperm},
		{"ioctl TIOCSETD", call("ioctl", 0, 0x5423), eperm},
		{"ioctl TIOCSCTTY", call("ioctl", 0, 0x540e), allow},
		{"ioctl TIOCSWINSZ", call("ioctl", 0, 0x5414), allow},
		// Transport protocols: TCP and UDP only, whatever the type flags.
		{"tcp socket, protocol IPPROTO_TCP", call("socket", 2, 1, 6), allow},
		{"udp6 socket, protocol IPPROTO_UDP", call("socket", 10, 2|0x800, 17), allow},
		{"MPTCP (262 does not fit 8 bits)", call("socket", 2, 1, 262), eperm},
		{"MPTCP over IPv6", call("socket", 10, 1|0x80000, 262), eperm},
		{"protocol 262 truncated to 8 bits would be 6", call("socket", 2, 1, 6|1<<8), eperm},
		{"UDP-Lite", call("socket", 2, 2, 136), eperm},
		{"SCTP stream", call("socket", 2, 1, 132), eperm},
		{"SCTP seqpacket, protocol 0", call("socket", 2, 5, 0), eperm},
		{"DCCP", call("socket", 2, 6, 33), eperm},
		{"DCCP type, protocol 0", call("socket", 10, 6, 0), eperm},
		{"ICMP ping socket", call("socket", 2, 2, 1), eperm},
		{"ICMPv6 ping socket", call("socket", 10, 2, 58), eperm},
		{"unix seqpacket", call("socket", 1, 5, 0), allow},
		{"setsockopt SO_REUSEADDR", call("setsockopt", 3, 1, 2), allow},
		{"setsockopt TCP_NODELAY", call("setsockopt", 3, 6, 1), allow},
		{"setsockopt IP_TOS (optname 1 of another level)", call("setsockopt", 3, 0, 31), allow},
		{"setsockopt TCP_ULP", call("setsockopt", 3, 6, 31), eperm},
		// Host-wide resources and effects.
		{"io_setup", call("io_setup", 1, 0), enosys},
		{"io_submit", call("io_submit", 0, 1, 0), enosys},
		{"io_getevents", call("io_getevents", 0, 1, 1), enosys},
		{"io_pgetevents", call("io_pgetevents"), enosys},
		{"io_cancel", call("io_cancel"), enosys},
		{"io_destroy", call("io_destroy"), enosys},
		{"sync", call("sync"), noop},
		{"syncfs", call("syncfs", 3), noop},
		{"fadvise DONTNEED", call("fadvise64", 3, 0, 0, 4), noop},
		{"fadvise WILLNEED", call("fadvise64", 3, 0, 0, 3), noop},
		{"fsync", call("fsync", 3), allow},
		{"fdatasync", call("fdatasync", 3), allow},
		{"sync_file_range", call("sync_file_range", 3, 0, 0, 7), allow},
		{"readahead", call("readahead", 3, 0, 4096), allow},
		{"mincore", call("mincore", 0, 4096, 0), allow},
		{"msync MS_SYNC", call("msync", 0, 4096, 4), allow},
		{"cachestat", call("cachestat", 3, 0, 0, 0), eperm},
		{"preadv2", call("preadv2", 3, 0, 1, 0, 0, 0), allow},
		{"preadv2 RWF_HIPRI", call("preadv2", 3, 0, 1, 0, 0, 1), allow},
		{"preadv2 RWF_NOWAIT", call("preadv2", 3, 0, 1, 0, 0, 8), eperm},
		{"preadv2 RWF_NOWAIT|RWF_HIPRI", call("preadv2", 3, 0, 1, 0, 0, 9), eperm},
		{"pwritev2 RWF_NOWAIT (own files only)", call("pwritev2", 3, 0, 1, 0, 0, 8), allow},
		{"fcntl F_GETFL", call("fcntl", 3, 3), allow},
		{"fcntl F_SETLK", call("fcntl", 3, 6, 0), allow},
		{"fcntl F_OFD_SETLK", call("fcntl", 3, 37, 0), allow},
		{"fcntl F_GETLEASE", call("fcntl", 3, 1025), allow},
		{"fcntl F_SETLEASE", call("fcntl", 3, 1024, 0), eperm},
		{"fcntl F_NOTIFY", call("fcntl", 3, 1026, 0x8000003f), eperm},
		{"fcntl F_NOTIFY with high bits", call("fcntl", 3, 1<<32|1026, 1), eperm},
		{"membarrier query", call("membarrier", 0), allow},
		{"membarrier private expedited", call("membarrier", 8), allow},
		{"membarrier global", call("membarrier", 1), allow},
		{"membarrier global expedited", call("membarrier", 2), eperm},
		{"flock", call("flock", 3, 2), allow},
		{"inotify_add_watch", call("inotify_add_watch", 3, 0, 0xfff), allow},
		{"personality query", call("personality", 0xffffffff), allow},
		{"personality READ_IMPLIES_EXEC", call("personality", 0x0400000), eperm},
		{"i386 ABI (int 0x80)", seccompData{nr: 20, arch: 0x40000003}, eperm},
		{"x32 ABI", seccompData{nr: x32Bit | syscallNumbers["read"], arch: nativeArch}, eperm},
		{"number past the table", seccompData{nr: 1000, arch: nativeArch}, eperm},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := run(t, prog, tc.d); got != tc.want {
				t.Errorf("got %#x, want %#x", got, tc.want)
			}
		})
	}
}

// The calls the threat model names must all be refused, whatever arguments.
func TestDefaultPolicyDeniesDangerousCalls(t *testing.T) {
	prog, err := Build(Default())
	if err != nil {
		t.Fatal(err)
	}
	denied := []string{
		"mount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount", "fspick",
		"open_tree", "move_mount", "mount_setattr", "open_tree_attr", "unshare", "setns",
		"keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
		"io_uring_setup", "io_uring_enter", "io_uring_register", "ptrace",
		"process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "open_by_handle_at",
		"name_to_handle_at", "init_module", "finit_module", "delete_module", "kexec_load",
		"kexec_file_load", "reboot", "swapon", "swapoff", "acct", "syslog", "settimeofday",
		"clock_settime", "clock_adjtime", "adjtimex", "quotactl", "quotactl_fd", "iopl",
		"ioperm", "memfd_secret", "lookup_dcookie", "vhangup", "sethostname", "setdomainname",
		"fanotify_init", "fanotify_mark", "process_madvise", "move_pages", "migrate_pages", "mbind",
		"set_mempolicy", "set_mempolicy_home_node", "get_mempolicy", "cachestat",
	}
	for _, name := range denied {
		if _, ok := syscallNumbers[name]; !ok {
			t.Errorf("%s: not in the syscall table", name)
			continue
		}
		for _, arg := range []uint64{0, 1, 0xffffffff} {
			if got := run(t, prog, call(name, arg, arg, arg)); got != eperm {
				t.Errorf("%s(%#x): got %#x, want EPERM", name, arg, got)
			}
		}
	}
}

func TestBuildRejectsBadPolicies(t *testing.T) {
	cases := map[string]Policy{
		"unknown name": {Allow: []string{"no_such_call"}},
		"allowed and conditional": {Allow: []string{"clone"}, Conditional: map[string]Rule{
			"clone": {Checks: []ArgCheck{{Arg: 0, MaskZero: 1}}}}},
		"argument out of range": {Conditional: map[string]Rule{"ioctl": {Checks: []ArgCheck{{Arg: 6, MaskZero: 1}}}}},
		"empty rule":            {Conditional: map[string]Rule{"ioctl": {}}},
		"mask without values":   {Conditional: map[string]Rule{"socket": {Checks: []ArgCheck{{Arg: 1, Mask: 0xf, MaskZero: 1}}}}},
		"allowed with an errno": {Allow: []string{"sync"}, Errno: map[string]uint16{"sync": 0}},
		"errno and a rule": {Errno: map[string]uint16{"ioctl": 0}, Conditional: map[string]Rule{
			"ioctl": {Checks: []ArgCheck{{Arg: 1, MaskZero: 4}}}}},
	}
	for name, p := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Build(p); err == nil {
				t.Fatal("Build succeeded")
			}
		})
	}
}

func TestBytesRoundTrip(t *testing.T) {
	prog, err := Build(Default())
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(prog.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(back) != fmt.Sprint(prog) {
		t.Fatal("decode(bytes(p)) != p")
	}
	if _, err := Decode([]byte{1, 2, 3}); err == nil {
		t.Fatal("decoded a truncated program")
	}
}

// The compiled default policy is pinned by a golden file, so that any change
// to what the box may call shows up in review.
func TestDefaultPolicyGolden(t *testing.T) {
	prog, err := Build(Default())
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for i, in := range prog {
		fmt.Fprintf(&b, "%4d  code=%#04x jt=%-3d jf=%-3d k=%#x\n", i, in.Code, in.Jt, in.Jf, in.K)
	}
	path := filepath.Join("testdata", "default_amd64.golden")
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(want, b.Bytes()) {
		t.Fatalf("compiled policy differs from %s; run go test -update if the change is intended", path)
	}
}

// Every system call number, listed or not, gets exactly the verdict the
// policy says: the search tree drops and invents nothing.
func TestDefaultPolicyExhaustive(t *testing.T) {
	p := Default()
	prog, err := Build(p)
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[uint32]bool{}
	for _, name := range p.Allow {
		allowed[syscallNumbers[name]] = true
	}
	special := map[uint32]bool{}
	for name := range p.Conditional {
		special[syscallNumbers[name]] = true
	}
	for name := range p.Errno {
		special[syscallNumbers[name]] = true
	}
	for nr := uint32(0); nr < 1024; nr++ {
		if special[nr] {
			continue
		}
		want := uint32(eperm)
		if allowed[nr] {
			want = allow
		}
		if got := run(t, prog, seccompData{nr: nr, arch: nativeArch}); got != want {
			t.Errorf("syscall %d: got %#x, want %#x", nr, got, want)
		}
	}
}
