package boxinit

import (
	"archive/tar"
	"errors"
	"io"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// collect sends the workspace files c selects as a tar stream to w. It runs
// after the program has ended and every other process of the box has been
// killed, so nothing changes the tree underneath; it still treats the tree
// as hostile: every open is relative to the workspace descriptor taken
// before the program ran, with RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS, a
// file is opened O_NONBLOCK (a FIFO cannot block the walk) and is sent only
// if fstat on the open descriptor says it is a regular file. It reports
// whether a bound cut the walk short.
func collect(root int, c *Collect, w io.Writer) (truncated bool, err error) {
	tw := tar.NewWriter(w)
	deadline := time.Now().Add(time.Duration(c.MaxNanos))
	files, total := 0, int64(0)
	var walk func(dirfd int, rel string, depth int) error
	errStop := errors.New("stop")
	walk = func(dirfd int, rel string, depth int) error {
		names, err := readDirNames(dirfd)
		if err != nil {
			return nil // unreadable directory: skip it
		}
		for _, name := range names {
			if time.Now().After(deadline) {
				truncated = true
				return errStop
			}
			p := name
			if rel != "" {
				p = rel + "/" + name
			}
			var st unix.Stat_t
			if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
				continue
			}
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFDIR:
				if depth >= c.MaxDepth {
					truncated = true
					continue
				}
				fd, err := openBeneath(dirfd, name, unix.O_DIRECTORY|unix.O_RDONLY)
				if err != nil {
					continue
				}
				err = walk(fd, p, depth+1)
				unix.Close(fd)
				if err != nil {
					return err
				}
			case unix.S_IFREG:
				if !matches(c.Patterns, p) {
					continue
				}
				if files >= c.MaxFiles || total+st.Size > c.MaxBytes {
					truncated = true
					continue
				}
				n, err := sendFile(tw, dirfd, name, p, c.MaxBytes-total)
				if err != nil {
					return err
				}
				if n >= 0 {
					files++
					total += n
				}
			}
		}
		return nil
	}
	err = walk(root, "", 0)
	if err == errStop {
		err = nil
	}
	if err != nil {
		return truncated, err
	}
	return truncated, tw.Close()
}

func openBeneath(dirfd int, name string, flags uint64) (int, error) {
	return unix.Openat2(dirfd, name, &unix.OpenHow{
		Flags:   flags | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
}

// sendFile adds one regular file to the stream, reading at most max bytes.
// It returns the bytes sent, or -1 when the entry turned out not to be a
// regular file or was larger than max.
func sendFile(tw *tar.Writer, dirfd int, name, rel string, max int64) (int64, error) {
	fd, err := openBeneath(dirfd, name, unix.O_RDONLY)
	if err != nil {
		return -1, nil
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size > max {
		return -1, nil
	}
	data := make([]byte, st.Size)
	for off := 0; off < len(data); {
		n, err := unix.Read(fd, data[off:])
		if err != nil || n == 0 {
			data = data[:off] // shrank while we read: send what is there
			break
		}
		off += n
	}
	h := &tar.Header{Name: rel, Mode: int64(st.Mode & 0o777), Size: int64(len(data)), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(h); err != nil {
		return 0, err
	}
	if _, err := tw.Write(data); err != nil {
		return 0, err
	}
	return int64(len(data)), nil
}

func readDirNames(fd int) ([]string, error) {
	var names []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return names, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, more := unix.ParseDirent(buf[:n], -1, nil)
		names = append(names, more...)
	}
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
