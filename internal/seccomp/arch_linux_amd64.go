//go:build linux && amd64

package seccomp

// AUDIT_ARCH_X86_64, and the bit that marks an x32 system call number.
const (
	nativeArch = 0xc000003e
	x32Bit     = 0x40000000
)
