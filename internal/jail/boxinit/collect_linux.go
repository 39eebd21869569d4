package boxinit

import (
	"archive/tar"
	"errors"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// collect sends the workspace files c selects as a tar stream on descriptor
// out, and reports whether anything that matched was left out. It runs
// after the program has ended and every other process of the box has been
// killed, so nothing changes the tree underneath; it still treats the tree
// as hostile: every open is relative to the workspace descriptor taken
// before the program ran, with RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS, a
// file is opened O_NONBLOCK (a FIFO cannot block the walk) and is sent only
// if fstat on the open descriptor says it is a regular file.
//
// Missing is truncated, always said: a matching file left out for any
// reason — a bound, the deadline, a path longer than MaxCollectPath, a
// directory or file that could not be opened or read, a descriptor or
// memory shortage — makes the result true. Nothing here is init's failure:
// the program's end is already reported.
//
// c.MaxNanos bounds the whole collection, the walk, the reads and the
// writes to out alike (the supervisor kills the box a little after it). The
// walk holds one descriptor per directory level and reads directories in
// small batches, so its memory does not grow with the tree: the box may be
// at its memory limit when it runs.
func collect(root int, c *Collect, out int) (truncated bool) {
	w := &walker{
		c:        c,
		deadline: time.Now().Add(time.Duration(c.MaxNanos)),
		buf:      make([]byte, 64<<10),
	}
	dw := &deadlineWriter{fd: out, deadline: w.deadline.Add(closeGrace)}
	if unix.SetNonblock(out, true) != nil {
		dw.deadline = time.Time{} // blocking writes: the supervisor's deadline still holds
	}
	w.tw = tar.NewWriter(dw)
	err := w.dir(root, "", 0)
	if errors.Is(err, errCut) {
		// The stream ends inside an entry: the supervisor drops the entry
		// and reports truncated. Closing the archive would lie.
		return true
	}
	if err != nil {
		w.truncated = true
	}
	if w.tw.Close() != nil {
		w.truncated = true
	}
	return w.truncated
}

// closeGrace is how long past the collection's deadline init may still
// write the end of the archive.
const closeGrace = 200 * time.Millisecond

var (
	// errStop ends the walk early; the archive can still be closed.
	errStop = errors.New("collection stopped")
	// errCut ends the walk inside a tar entry.
	errCut = errors.New("collection cut inside an entry")
)

type walker struct {
	c         *Collect
	tw        *tar.Writer
	deadline  time.Time
	files     int
	total     int64
	truncated bool
	buf       []byte // file content, read and sent in pieces
}

// dir walks one directory. Its entries are read in batches of one
// getdents buffer, and subdirectories are walked as they come.
func (w *walker) dir(dirfd int, rel string, depth int) error {
	buf := make([]byte, 8<<10)
	for {
		n, err := unix.Getdents(dirfd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			// Whatever the rest of this directory holds is left out.
			w.truncated = true
			return nil
		}
		if n <= 0 {
			return nil
		}
		_, _, names := unix.ParseDirent(buf[:n], -1, nil)
		for _, name := range names {
			if time.Now().After(w.deadline) {
				w.truncated = true
				return errStop
			}
			if err := w.entry(dirfd, rel, name, depth); err != nil {
				return err
			}
		}
	}
}

func (w *walker) entry(dirfd int, rel, name string, depth int) error {
	p := name
	if rel != "" {
		p = rel + "/" + name
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if matches(w.c.Patterns, p) || mayContain(w.c.Patterns, p) {
			w.truncated = true
		}
		return nil
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if !mayContain(w.c.Patterns, p) {
			return nil
		}
		// Every path below is at least two bytes longer.
		if depth >= w.c.MaxDepth || len(p)+2 > MaxCollectPath {
			w.truncated = true
			return nil
		}
		fd, err := openBeneath(dirfd, name, unix.O_DIRECTORY|unix.O_RDONLY)
		if err != nil {
			w.truncated = true // EMFILE under a small RLIMIT_NOFILE, among others
			return nil
		}
		err = w.dir(fd, p, depth+1)
		unix.Close(fd)
		return err
	case unix.S_IFREG:
		if !matches(w.c.Patterns, p) {
			return nil
		}
		if w.files >= w.c.MaxFiles {
			w.truncated = true
			return errStop // no other file can be sent
		}
		if len(p) > MaxCollectPath || w.total+st.Size > w.c.MaxBytes {
			w.truncated = true
			return nil
		}
		return w.file(dirfd, name, p)
	}
	// Symlinks, FIFOs, sockets and devices are never sent, by design; they
	// are not "left out".
	return nil
}

// file sends one regular file, streaming its content.
func (w *walker) file(dirfd int, name, rel string) error {
	fd, err := openBeneath(dirfd, name, unix.O_RDONLY)
	if err != nil {
		w.truncated = true
		return nil
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || w.total+st.Size > w.c.MaxBytes {
		w.truncated = true
		return nil
	}
	h := &tar.Header{Name: rel, Mode: int64(st.Mode & 0o777), Size: st.Size, Typeflag: tar.TypeReg}
	if err := w.tw.WriteHeader(h); err != nil {
		w.truncated = true
		return errCut // a header may be partly written
	}
	for left := st.Size; left > 0; {
		if time.Now().After(w.deadline) {
			w.truncated = true
			return errCut
		}
		n, err := unix.Read(fd, w.buf[:min(int64(len(w.buf)), left)])
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			// Shorter than fstat said (nothing in the box runs any more,
			// so this is not expected). A tar entry cannot be shortened
			// once its header is out, and padding would return content
			// the file never had: end the stream inside the entry.
			w.truncated = true
			return errCut
		}
		if _, err := w.tw.Write(w.buf[:n]); err != nil {
			w.truncated = true
			return errCut
		}
		left -= int64(n)
	}
	// Longer than fstat said: what was sent is a prefix.
	if n, _ := unix.Read(fd, w.buf[:1]); n > 0 {
		w.truncated = true
	}
	w.files++
	w.total += st.Size
	return nil
}

// deadlineWriter writes to a non-blocking descriptor until a deadline: a
// supervisor that stops reading cannot hold init past its budget.
type deadlineWriter struct {
	fd       int
	deadline time.Time // zero: none (the descriptor blocks)
}

var errDeadline = errors.New("deadline passed")

func (d *deadlineWriter) Write(b []byte) (int, error) {
	done := 0
	for done < len(b) {
		n, err := unix.Write(d.fd, b[done:])
		if n > 0 {
			done += n
		}
		switch {
		case err == nil || err == unix.EINTR:
			continue
		case err != unix.EAGAIN || d.deadline.IsZero():
			return done, err
		}
		ms := time.Until(d.deadline).Milliseconds() + 1
		if ms <= 1 {
			return done, errDeadline
		}
		fds := []unix.PollFd{{Fd: int32(d.fd), Events: unix.POLLOUT}}
		if _, err := unix.Poll(fds, int(min(ms, 1<<30))); err != nil && err != unix.EINTR {
			return done, err
		}
	}
	return done, nil
}

func openBeneath(dirfd int, name string, flags uint64) (int, error) {
	return unix.Openat2(dirfd, name, &unix.OpenHow{
		Flags:   flags | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
}

// matches reports whether rel matches one of the patterns.
func matches(patterns []string, rel string) bool {
	for _, p := range patterns {
		if p == "**" {
			return true
		}
		if ok, _ := path.Match(p, rel); ok {
			return true
		}
		// "dir/**" matches everything below dir.
		if strings.HasSuffix(p, "/**") && strings.HasPrefix(rel, strings.TrimSuffix(p, "**")) {
			return true
		}
	}
	return false
}

// mayContain reports whether a file below the directory dir could match
// one of the patterns: the walk neither enters a directory that cannot hold
// anything asked for, nor counts what it holds as left out.
func mayContain(patterns []string, dir string) bool {
	ds := strings.Split(dir, "/")
	for _, p := range patterns {
		if p == "**" {
			return true
		}
		if base, ok := strings.CutSuffix(p, "/**"); ok &&
			(strings.HasPrefix(dir+"/", base+"/") || strings.HasPrefix(base+"/", dir+"/")) {
			return true
		}
		if strings.ContainsAny(p, `\[`) {
			return true // an escape or a class may match a '/': do not guess
		}
		// path.Match's '*' and '?' never match '/': a match below dir
		// needs more elements than dir, the first ones matching dir's.
		ps := strings.Split(p, "/")
		if len(ps) <= len(ds) {
			continue
		}
		ok := true
		for i, d := range ds {
			if m, _ := path.Match(ps[i], d); !m {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
