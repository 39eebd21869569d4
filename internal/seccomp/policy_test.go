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
		"fanotify_init", "process_madvise", "move_pages", "migrate_pages", "mbind",
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
