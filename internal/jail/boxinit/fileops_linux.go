package boxinit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// defaultFileOpTime bounds a file operation whose request sets no time.
const defaultFileOpTime = 10 * time.Second

// fileOp performs one file operation of a session through the box's own
// view, and returns its reply. The host never resolves a path in the box:
// init does, relative to the descriptor of /box or /tmp taken before any
// command ran, with openat2 RESOLVE_BENEATH (no `..` or absolute escape),
// RESOLVE_NO_SYMLINKS and RESOLVE_NO_MAGICLINKS (no symlink anywhere in
// the path, the Judge0 CVE-2024-28185/28189 class), RESOLVE_NO_XDEV (no
// other mount), O_NOFOLLOW and O_NONBLOCK (a FIFO cannot block it). A
// file is read or written only once fstat on the open descriptor says it
// is a regular file, so swapping the path for something else between
// checks changes nothing: the checks are on what was opened. Sizes are
// bounded by the request and the session's own RLIMIT_FSIZE and disk; the
// pipe to or from the supervisor is used with the request's deadline.
func (s *server) fileOp(q SessionRequest, fds []int) (rep SessionReply) {
	defer closeAll(fds)
	rep.ID = q.ID
	deadline := time.Now().Add(defaultFileOpTime)
	if q.TimeoutNanos > 0 {
		deadline = time.Now().Add(time.Duration(q.TimeoutNanos))
	}
	want := 1
	if q.Op == OpRemove {
		want = 0
	}
	var err error
	switch {
	case len(q.Path) != 1 || len(fds) != want || q.Max < 0:
		err = fmt.Errorf("malformed file request: %w", unix.EINVAL)
	default:
		var root int
		var rel string
		root, rel, err = s.resolve(q.Path[0])
		if err != nil {
			break
		}
		switch q.Op {
		case OpRead:
			rep.Size, err = readFileTo(root, rel, q.Max, fds[0], deadline)
		case OpWrite:
			if q.Parents {
				err = s.makeParents(root, rel)
			}
			if err == nil {
				err = s.writeFileFrom(root, rel, q.Max, q.Mode, fds[0], deadline)
			}
		case OpList:
			rep.Size, rep.Truncated, err = listTo(root, rel, q.Max, fds[0], deadline)
		case OpRemove:
			err = remove(root, rel)
		}
	}
	if err != nil {
		rep.Error = bounded(err.Error())
		var e unix.Errno
		if errors.As(err, &e) {
			rep.Errno = int(e)
		}
	}
	return rep
}

// resolve maps a box path to one of the writable roots and a path relative
// to it: /box/…, /tmp/…, or a relative path (below /box). Anything else is
// not the box's writable view (EACCES).
func (s *server) resolve(p string) (int, string, error) {
	if p == "" || len(p) > unix.PathMax || strings.ContainsRune(p, 0) {
		return -1, "", fmt.Errorf("path %s: %w", shortName(p), unix.EINVAL)
	}
	if !strings.HasPrefix(p, "/") {
		return s.roots["/box"], p, nil
	}
	for _, r := range sessionRoots {
		if p == r || p == r+"/" {
			return s.roots[r], ".", nil
		}
		if rest, ok := strings.CutPrefix(p, r+"/"); ok {
			return s.roots[r], rest, nil
		}
	}
	return -1, "", fmt.Errorf("path %s is outside /box and /tmp: %w", shortName(p), unix.EACCES)
}

// openIn opens rel beneath root; see fileOp for the flags. openat2 answers
// EAGAIN when a rename raced the resolution: tried again a few times.
func openIn(root int, rel string, flags uint64, mode uint32) (int, error) {
	extra := uint64(unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK)
	if flags&unix.O_PATH != 0 {
		// openat2 takes no other flags with O_PATH (EINVAL).
		extra &^= unix.O_NONBLOCK
	}
	how := &unix.OpenHow{
		Flags: flags | extra,
		Mode:  uint64(mode),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS |
			unix.RESOLVE_NO_XDEV,
	}
	for i := 0; ; i++ {
		fd, err := unix.Openat2(root, rel, how)
		if (err == unix.EAGAIN || err == unix.EINTR) && i < 16 {
			continue
		}
		if err != nil {
			return -1, fmt.Errorf("open %s: %w", shortName(rel), err)
		}
		return fd, nil
	}
}

// regular checks that fd is a regular file and returns its size.
func regular(fd int, rel string) (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return st.Size, nil
	case unix.S_IFDIR:
		return 0, fmt.Errorf("%s: %w", shortName(rel), unix.EISDIR)
	}
	return 0, fmt.Errorf("%s is not a regular file: %w", shortName(rel), unix.EINVAL)
}

// readFileTo sends at most max bytes of a regular file on out; a larger
// file (or one growing past max while read) is EFBIG, with nothing sent.
func readFileTo(root int, rel string, max int64, out int, deadline time.Time) (int64, error) {
	fd, err := openIn(root, rel, unix.O_RDONLY, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	size, err := regular(fd, rel)
	if err != nil {
		return 0, err
	}
	if size > max {
		return 0, fmt.Errorf("%s is %d bytes (at most %d): %w", shortName(rel), size, max, unix.EFBIG)
	}
	// Read all first (at most max+1 bytes): what is sent is whole or
	// nothing, never a prefix the supervisor would take for the file.
	data := make([]byte, 0, size)
	buf := make([]byte, 64<<10)
	for int64(len(data)) <= max {
		n, err := unix.Read(fd, buf[:min(int64(len(buf)), max+1-int64(len(data)))])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			break
		}
		data = append(data, buf[:n]...)
	}
	if int64(len(data)) > max {
		return 0, fmt.Errorf("%s grew past %d bytes: %w", shortName(rel), max, unix.EFBIG)
	}
	if err := unix.SetNonblock(out, true); err != nil {
		return 0, err
	}
	if _, err := (&deadlineWriter{fd: out, deadline: deadline}).Write(data); err != nil {
		return 0, err
	}
	return int64(len(data)), nil
}

// writeFileFrom creates or replaces a regular file, owned by the box's
// user, with exactly size bytes read from in.
func (s *server) writeFileFrom(root int, rel string, size int64, mode uint32, in int, deadline time.Time) error {
	if mode == 0 {
		mode = 0o644
	}
	mode &= 0o777
	fd, err := openIn(root, rel, unix.O_WRONLY|unix.O_CREAT, mode)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	// Truncated only once it is known to be a regular file.
	if _, err := regular(fd, rel); err != nil {
		return err
	}
	for _, step := range []func() error{
		func() error { return unix.Fchown(fd, s.uid, s.gid) },
		func() error { return unix.Fchmod(fd, mode) },
		func() error { return unix.Ftruncate(fd, 0) },
	} {
		if err := step(); err != nil {
			return fmt.Errorf("%s: %w", shortName(rel), err)
		}
	}
	if err := unix.SetNonblock(in, true); err != nil {
		return err
	}
	r := io.LimitReader(&deadlineReader{fd: in, deadline: deadline}, size)
	buf := make([]byte, 64<<10)
	var done int64
	for {
		n, rerr := r.Read(buf)
		for off := 0; off < n; {
			w, err := unix.Write(fd, buf[off:n])
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				// EFBIG past the session's file size, ENOSPC past its disk.
				return fmt.Errorf("write %s: %w", shortName(rel), err)
			}
			off += w
		}
		done += int64(n)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if done != size {
		return fmt.Errorf("write %s: %d of %d bytes arrived: %w", shortName(rel), done, size, unix.EIO)
	}
	return nil
}

// makeParents makes the missing directories of rel's parent, one level at
// a time beneath root, owned by the box's user. Each level is opened with
// the same rules as any path (no symlink, no other mount), so a directory
// the program swaps for a symlink meanwhile stops it.
func (s *server) makeParents(root int, rel string) error {
	dir := path.Dir(path.Clean(rel))
	if dir == "." {
		return nil
	}
	if dir == ".." || strings.HasPrefix(dir, "../") || strings.HasPrefix(dir, "/") {
		return fmt.Errorf("%s: %w", shortName(rel), unix.EXDEV)
	}
	parts := strings.Split(dir, "/")
	if len(parts) > maxParentDepth {
		return fmt.Errorf("%s: more than %d directory levels: %w", shortName(rel), maxParentDepth, unix.EINVAL)
	}
	pfd := root
	for i, name := range parts {
		fd, err := openIn(pfd, name, unix.O_PATH|unix.O_DIRECTORY, 0)
		if errors.Is(err, unix.ENOENT) {
			if err := unix.Mkdirat(pfd, name, 0o755); err != nil && err != unix.EEXIST {
				closeUnlessRoot(pfd, root)
				return fmt.Errorf("mkdir %s: %w", shortName(strings.Join(parts[:i+1], "/")), err)
			}
			fd, err = openIn(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			if err == nil {
				err = unix.Fchown(fd, s.uid, s.gid)
			}
		}
		closeUnlessRoot(pfd, root)
		if err != nil {
			if fd >= 0 {
				unix.Close(fd)
			}
			return err
		}
		pfd = fd
	}
	closeUnlessRoot(pfd, root)
	return nil
}

// maxParentDepth bounds the directories one write may make.
const maxParentDepth = 32

func closeUnlessRoot(fd, root int) {
	if fd != root {
		unix.Close(fd)
	}
}

// listTo sends a directory's entries, at most max, as JSON lines on out.
// Entries are described by fstatat without following anything.
func listTo(root int, rel string, max int64, out int, deadline time.Time) (int64, bool, error) {
	fd, err := openIn(root, rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return 0, false, err
	}
	defer unix.Close(fd)
	if err := unix.SetNonblock(out, true); err != nil {
		return 0, false, err
	}
	enc := json.NewEncoder(&deadlineWriter{fd: out, deadline: deadline})
	var n int64
	buf := make([]byte, 8<<10)
	for {
		got, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, false, err
		}
		if got <= 0 {
			return n, false, nil
		}
		_, _, names := unix.ParseDirent(buf[:got], -1, nil)
		for _, name := range names {
			if n >= max {
				return n, true, nil
			}
			if time.Now().After(deadline) {
				return n, true, errDeadline
			}
			var st unix.Stat_t
			if unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
				continue // gone meanwhile
			}
			e := ListEntry{Name: []byte(name), Type: fileType(st.Mode), Size: st.Size, Mode: st.Mode & 0o7777,
				MtimeNanos: st.Mtim.Nano()}
			if err := enc.Encode(e); err != nil {
				return n, true, err
			}
			n++
		}
	}
}

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	}
	return "device"
}

// remove removes a file, symlink (not its target) or empty directory. The
// path is cleaned lexically first; its parent is opened beneath the root.
func remove(root int, rel string) error {
	rel = path.Clean(rel)
	if rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("remove %s: %w", shortName(rel), unix.EINVAL)
	}
	parent, base := path.Split(rel)
	pfd := root
	if parent != "" {
		fd, err := openIn(root, strings.TrimSuffix(parent, "/"), unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		pfd = fd
	}
	err := unix.Unlinkat(pfd, base, 0)
	if err == unix.EISDIR {
		err = unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR)
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", shortName(rel), err)
	}
	return nil
}

// deadlineReader reads a non-blocking descriptor until a deadline.
type deadlineReader struct {
	fd       int
	deadline time.Time
}

func (d *deadlineReader) Read(b []byte) (int, error) {
	for {
		n, err := unix.Read(d.fd, b)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			ms := time.Until(d.deadline).Milliseconds() + 1
			if ms <= 1 {
				return 0, errDeadline
			}
			fds := []unix.PollFd{{Fd: int32(d.fd), Events: unix.POLLIN}}
			if _, err := unix.Poll(fds, int(min(ms, 1<<30))); err != nil && err != unix.EINTR {
				return 0, err
			}
			continue
		case err != nil:
			return 0, err
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}
