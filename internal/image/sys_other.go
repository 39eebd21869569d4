//go:build !unix

package image

import (
	"errors"
	"io/fs"
	"os"
)

// The store locks its files with flock(2); elsewhere it cannot be opened.
const (
	lockSH = 1
	lockEX = 2
	lockNB = 4
)

var errBusy = errors.New("locked by another holder")

func flock(path string, how int) (*os.File, error) {
	return nil, &os.PathError{Op: "flock", Path: path, Err: errors.ErrUnsupported}
}

func inode(fs.FileInfo) (ino, nlink uint64, ok bool) { return 0, 0, false }
