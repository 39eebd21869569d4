package boxinit

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// extract writes the workspace's initial files from a tar stream into dir,
// owned by the box's user. It runs before any user code, but the names still
// come from a request: each must be a clean relative path, and every file is
// created relative to a directory descriptor with RESOLVE_BENEATH and
// RESOLVE_NO_SYMLINKS, so no name can reach outside dir.
//
// limit bounds the bytes of all files together (the workspace's size): a
// stream that declares more fails with ENOSPC before anything of the file
// is written, as the full tmpfs would. Sparse entries are refused: the tar
// reader expands their holes, so a few bytes of stream could declare
// gigabytes.
func extract(tr *tar.Reader, dir string, uid, gid int, limit int64) error {
	root, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(root)
	how := func(flags uint64, mode uint64) *unix.OpenHow {
		return &unix.OpenHow{Flags: flags | unix.O_CLOEXEC | unix.O_NOFOLLOW, Mode: mode,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
	}
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		for k := range h.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				return fmt.Errorf("%q: sparse entries are not supported", h.Name)
			}
		}
		if h.Typeflag == tar.TypeReg {
			if h.Size < 0 || h.Size > limit-total {
				return fmt.Errorf("%q: %d bytes past %d of files do not fit in %d: %w", h.Name, h.Size, total, limit, unix.ENOSPC)
			}
			total += h.Size
		}
		name := strings.TrimSuffix(h.Name, "/")
		if name == "" || path.IsAbs(name) || path.Clean(name) != name || name == "." || strings.HasPrefix(name, "../") || name == ".." || strings.ContainsRune(name, 0) {
			return fmt.Errorf("bad file name %q", h.Name)
		}
		parent, base := path.Split(name)
		pfd := root
		if parent != "" {
			pfd, err = unix.Openat2(root, strings.TrimSuffix(parent, "/"), how(unix.O_DIRECTORY|unix.O_PATH, 0))
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		err = writeEntry(pfd, base, h, tr, uid, gid, how)
		if pfd != root {
			unix.Close(pfd)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
}

func writeEntry(dirfd int, base string, h *tar.Header, r io.Reader, uid, gid int, how func(uint64, uint64) *unix.OpenHow) error {
	mode := uint32(h.Mode) & 0o777
	switch h.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(dirfd, base, mode|0o700); err != nil && err != unix.EEXIST {
			return err
		}
		fd, err := unix.Openat2(dirfd, base, how(unix.O_DIRECTORY|unix.O_RDONLY, 0))
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Fchown(fd, uid, gid)
	case tar.TypeReg:
		fd, err := unix.Openat2(dirfd, base, how(unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, uint64(mode)))
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return err
		}
		if err := unix.Fchmod(fd, mode); err != nil {
			return err
		}
		buf := make([]byte, 64<<10)
		for {
			n, rerr := r.Read(buf)
			for off := 0; off < n; {
				w, err := unix.Write(fd, buf[off:n])
				if err != nil {
					return err
				}
				off += w
			}
			if errors.Is(rerr, io.EOF) {
				return nil
			}
			if rerr != nil {
				return rerr
			}
		}
	case tar.TypeSymlink:
		if err := unix.Symlinkat(h.Linkname, dirfd, base); err != nil {
			return err
		}
		return unix.Fchownat(dirfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
	default:
		return fmt.Errorf("unsupported entry type %q", h.Typeflag)
	}
}
