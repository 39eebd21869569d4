package boxinit

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// setName sets the calling thread's name (/proc/<pid>/comm for the main
// thread), at most 15 bytes.
func setName(name string) {
	b := append([]byte(name), 0)
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0, 0, 0)
}
