package boxinit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// A small source directory (Bind.Copy: a few files, such as /etc/perl or
// /etc/ld.so.conf.d) is copied into the box's root tmpfs instead of seen
// through an overlay: copying a handful of files costs fewer system calls
// than mounting an overlayfs and tearing it down with the box, about 0.1 ms
// of CPU each. A copy is as private to the box as an overlay (its inodes
// are the box's own tmpfs's) and as read-only (the root is remounted
// read-only once built).
const (
	maxTreeEntries = 16
	maxTreeBytes   = 128 << 10
	maxTreeDepth   = 4
)

// treeEntry is one entry below a copied directory.
type treeEntry struct {
	rel  string // path below the directory
	kind uint32 // unix.S_IFDIR, S_IFREG or S_IFLNK
	mode uint32 // permission bits
	data []byte // a file's content
	link string // a symlink's target
}

var errTreeTooBig = errors.New("not a small directory")

// SmallTree reports whether dir is a directory that Bind.Copy would copy:
// at most maxTreeEntries entries in all, maxTreeBytes of file content,
// maxTreeDepth levels, and nothing but directories, regular files and
// symlinks. The supervisor asks once; init checks again when it copies.
func SmallTree(dir string) bool {
	_, err := readTree(dir)
	return err == nil
}

// readTree reads a small directory whole: the directory itself first (rel
// "."), then what is below it. It fails with errTreeTooBig, or the error
// that stopped it. Nothing below dir is followed: every entry is opened
// relative to its parent's descriptor, without following links.
func readTree(dir string) ([]treeEntry, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	entries := []treeEntry{{rel: ".", kind: unix.S_IFDIR, mode: st.Mode & 0o1777}}
	total := 0
	err = readTreeAt(fd, "", 1, &entries, &total)
	return entries, err
}

func readTreeAt(dirfd int, rel string, depth int, entries *[]treeEntry, total *int) error {
	d := os.NewFile(uintptr(dirfd), rel)
	defer d.Close()
	names, err := d.Readdirnames(maxTreeEntries + 1)
	if err != nil && len(names) == 0 {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	for _, name := range names {
		if len(*entries) > maxTreeEntries { // the directory itself is one
			return errTreeTooBig
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		e := treeEntry{rel: filepath.Join(rel, name), kind: st.Mode & unix.S_IFMT, mode: st.Mode & 0o7777 &^ (unix.S_ISUID | unix.S_ISGID)}
		switch e.kind {
		case unix.S_IFLNK:
			buf := make([]byte, unix.PathMax)
			n, err := unix.Readlinkat(dirfd, name, buf)
			if err != nil {
				return err
			}
			e.link = string(buf[:n])
			*entries = append(*entries, e)
		case unix.S_IFREG:
			if *total += int(st.Size); *total > maxTreeBytes {
				return errTreeTooBig
			}
			data, err := readFileAt(dirfd, name, int(st.Size))
			if err != nil {
				return err
			}
			e.data = data
			*entries = append(*entries, e)
		case unix.S_IFDIR:
			if depth >= maxTreeDepth {
				return errTreeTooBig
			}
			*entries = append(*entries, e)
			sub, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			if err := readTreeAt(sub, e.rel, depth+1, entries, total); err != nil {
				return err
			}
		default:
			return errTreeTooBig
		}
	}
	return nil
}

// readFileAt reads a regular file of about size bytes, at most
// maxTreeBytes.
func readFileAt(dirfd int, name string, size int) ([]byte, error) {
	// O_NONBLOCK: should it have become a FIFO since the stat, the open
	// must not wait for a writer (the fstat then refuses it).
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, errTreeTooBig
	}
	buf := make([]byte, min(size, maxTreeBytes)+1)
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	if n > maxTreeBytes || n == len(buf) && n > size {
		return nil, errTreeTooBig // grew since the stat
	}
	return buf[:n], nil
}

// placeTree writes a copied directory at dst (under newRoot), which must
// not exist yet.
func placeTree(dst string, entries []treeEntry) error {
	for _, e := range entries {
		p := filepath.Join(dst, e.rel)
		var err error
		switch e.kind {
		case unix.S_IFDIR:
			if err = unix.Mkdir(p, e.mode); err == nil {
				err = unix.Chmod(p, e.mode) // past the umask
			}
		case unix.S_IFLNK:
			err = unix.Symlink(e.link, p)
		case unix.S_IFREG:
			err = writeNew(p, e.data, e.mode)
		}
		if err != nil {
			return fmt.Errorf("copy %s: %w", p, err)
		}
	}
	return nil
}

// writeNew creates a file that must not exist yet, with mode, and writes
// data to it.
func writeNew(p string, data []byte, mode uint32) error {
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for len(data) > 0 {
		n, err := unix.Write(fd, data)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		data = data[n:]
	}
	// The umask may have taken bits off the mode.
	return unix.Fchmod(fd, mode)
}
