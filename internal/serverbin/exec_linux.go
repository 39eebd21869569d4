package serverbin

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// copyBuffer is the size of Exec's writes into the memfd: the embedded
// binary is tens of MiB, and a larger buffer makes fewer system calls.
const copyBuffer = 1 << 20

// Exec replaces the calling process with the embedded runbox-server, run
// with argv and envv. The process stays the same (its pid, its parent, its
// open descriptors but the memfd), so a service manager's signals and the
// exit code reach runbox-server with nothing in between. It returns only on
// failure: ErrNotBuilt, or why the binary could not be started.
func Exec(argv, envv []string) error {
	src, ok := Open()
	if !ok {
		return ErrNotBuilt
	}
	f, err := memfd(Name)
	if err != nil {
		return err
	}
	defer f.Close()
	// struct{ io.Writer } hides os.File's ReadFrom, which would copy in
	// writes of 32 KiB whatever the buffer given.
	if _, err := io.CopyBuffer(struct{ io.Writer }{f}, src, make([]byte, copyBuffer)); err != nil {
		return fmt.Errorf("copy %s to a memfd: %w", Name, err)
	}
	// Sealed, the image cannot change under the process that runs it, nor
	// later through /proc/<pid>/exe (runc seals its copy of itself the same
	// way against CVE-2019-5736, a box overwriting the host's binary).
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		return os.NewSyscallError("fcntl F_ADD_SEALS", err)
	}
	// The descriptor is close-on-exec: the kernel opens the file by this
	// path before it closes the descriptor, and runbox-server inherits none.
	path := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	if err := syscall.Exec(path, argv, envv); err != nil {
		return fmt.Errorf("exec %s: %w", Name, &os.PathError{Op: "execve", Path: path, Err: err})
	}
	return nil // not reached: Exec succeeded
}

// memfd is an anonymous file, close-on-exec, that may be executed and
// sealed. MFD_EXEC says "executable" to kernels that ask (6.3 and later:
// with vm.memfd_noexec=1 a memfd without it cannot be executed, and each
// one without either flag is logged); older kernels refuse the flag
// (EINVAL) and execute any memfd.
func memfd(name string) (*os.File, error) {
	flags := unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	fd, err := unix.MemfdCreate(name, flags|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.MemfdCreate(name, flags)
	}
	if err != nil {
		return nil, os.NewSyscallError("memfd_create", err)
	}
	return os.NewFile(uintptr(fd), "memfd:"+name), nil
}
