//go:build !(linux && amd64)

package seccomp

// No system call table for this architecture yet: Build returns ErrUnsupported.
const (
	nativeArch = 0
	x32Bit     = 0
)

var syscallNumbers = map[string]uint32{}
