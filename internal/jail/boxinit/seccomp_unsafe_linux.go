package boxinit

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// installSeccomp loads the compiled filter on every thread of init
// (SECCOMP_FILTER_FLAG_TSYNC: the Go runtime runs several), so the program
// inherits it at fork and keeps it across execve.
func installSeccomp(prog []byte) error {
	if len(prog) == 0 || len(prog)%8 != 0 {
		return errors.New("seccomp: empty or malformed filter")
	}
	fprog := unix.SockFprog{
		Len:    uint16(len(prog) / 8),
		Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0])),
	}
	r, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	if e != 0 {
		return fmt.Errorf("install seccomp filter: %w", e)
	}
	if r != 0 {
		return fmt.Errorf("install seccomp filter: thread %d could not be synchronized", r)
	}
	return nil
}
