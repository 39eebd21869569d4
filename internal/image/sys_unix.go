//go:build unix

package image

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// Lock modes of flock(2).
const (
	lockSH = syscall.LOCK_SH
	lockEX = syscall.LOCK_EX
	lockNB = syscall.LOCK_NB
)

// errBusy reports that a non-blocking lock is held by someone else.
var errBusy = errors.New("locked by another holder")

// flock opens (creating it 0600) the lock file at path, one of the store's
// own paths, and locks it with flock(2) in mode how. The lock lasts until the
// returned file is closed. Locks taken through different opens exclude each
// other even within one process, which is what lets them guard against
// goroutines and other processes alike. With lockNB, a held lock is errBusy.
func flock(path string, how int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		if err == syscall.EWOULDBLOCK {
			return nil, errBusy
		}
		return nil, &os.PathError{Op: "flock", Path: path, Err: err}
	}
	return f, nil
}

// inode returns a file's inode number and link count, to count the bytes of
// hard-linked files once.
func inode(fi fs.FileInfo) (ino, nlink uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return uint64(st.Ino), uint64(st.Nlink), true
}
