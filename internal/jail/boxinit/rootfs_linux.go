package boxinit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// newRoot is where the box's root tmpfs is mounted before pivot_root. Any
// existing directory would do: the mount lives only in this box's mount
// namespace. Bind sources are opened before it is covered, so a source
// under /tmp still works.
const newRoot = "/tmp"

// Mount flags for everything taken from the host: read-only, and neither
// setuid bits nor device nodes honoured.
const roAttrs = unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV

type source struct {
	dst    string
	fd     int    // O_PATH descriptor of a directory or file, or -1
	link   string // symlink target when the source is a symlink
	isDir  bool
	device bool
}

// buildRoot makes the box's filesystem: a fresh tmpfs root holding read-only
// binds of the host's system directories, generated /etc files, a fresh
// /proc, a minimal /dev, and private size-limited tmpfs mounts for /box,
// /tmp and /dev/shm; then pivot_root into it and detach the host's tree.
func buildRoot(cfg *Config) error {
	// Nothing we mount may propagate back to the host's namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	var srcs []source
	defer func() {
		for _, s := range srcs {
			if s.fd >= 0 {
				unix.Close(s.fd)
			}
		}
	}()
	for _, b := range cfg.Binds {
		s, err := openSource(b.Src, b.Dst)
		if err != nil {
			if b.Optional && errors.Is(err, os.ErrNotExist) {
				continue
			}
			return err
		}
		srcs = append(srcs, s)
	}
	for _, d := range cfg.Devices {
		if strings.ContainsAny(d, "/\x00") || d == "" || d == "." || d == ".." {
			return fmt.Errorf("device name %q", d)
		}
		s, err := openSource("/dev/"+d, "/dev/"+d)
		if err != nil {
			return err
		}
		s.device = true
		srcs = append(srcs, s)
	}

	if err := unix.Mount("tmpfs", newRoot, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=4m,nr_inodes=4096,mode=0755"); err != nil {
		return fmt.Errorf("mount root tmpfs: %w", err)
	}
	for _, d := range []string{"proc", "dev", "box", "tmp", "etc"} {
		if err := os.Mkdir(filepath.Join(newRoot, d), 0o755); err != nil {
			return err
		}
	}
	for _, g := range cfg.Generated {
		p, err := inRoot(g.Path)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(g.Data), os.FileMode(g.Mode&0o777)); err != nil {
			return fmt.Errorf("generate %s: %w", g.Path, err)
		}
	}
	// /dev first: device binds land on files inside its tmpfs.
	if err := unix.Mount("tmpfs", filepath.Join(newRoot, "dev"), "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	for _, s := range srcs {
		if err := placeSource(s); err != nil {
			return err
		}
	}
	for name, target := range map[string]string{
		"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2",
	} {
		if err := os.Symlink(target, filepath.Join(newRoot, "dev", name)); err != nil {
			return err
		}
	}
	if err := os.Mkdir(filepath.Join(newRoot, "dev", "shm"), 0o755); err != nil {
		return err
	}
	if err := mountTmpfs(filepath.Join(newRoot, "dev", "shm"), warmSize, cfg.UID, cfg.GID, 0o1777); err != nil {
		return fmt.Errorf("mount /dev/shm: %w", err)
	}
	if err := unix.Mount("", filepath.Join(newRoot, "dev"), "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("remount /dev read-only: %w", err)
	}
	// A fresh procfs for the box's own pid namespace: it shows only the
	// box's processes, and /proc/net only its loopback.
	if err := unix.Mount("proc", filepath.Join(newRoot, "proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	if err := mountTmpfs(filepath.Join(newRoot, "box"), warmSize, cfg.UID, cfg.GID, 0o755); err != nil {
		return fmt.Errorf("mount /box: %w", err)
	}
	if err := mountTmpfs(filepath.Join(newRoot, "tmp"), warmSize, cfg.UID, cfg.GID, 0o1777); err != nil {
		return fmt.Errorf("mount /tmp: %w", err)
	}

	// pivot_root(".", ".") stacks the old root on top of the new one; the
	// detach then drops the host's whole tree from this namespace, so no
	// path inside the box leads back to it.
	if err := unix.Chdir(newRoot); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	// The root itself is read-only: only /box, /tmp and /dev/shm are
	// writable.
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("remount / read-only: %w", err)
	}
	return nil
}

// inRoot maps an absolute box path to its place under newRoot, refusing
// anything that is not a clean absolute path.
func inRoot(p string) (string, error) {
	if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" {
		return "", fmt.Errorf("box path %q must be clean and absolute", p)
	}
	return filepath.Join(newRoot, p), nil
}

// openSource opens a bind source before the new root covers anything.
func openSource(src, dst string) (source, error) {
	s := source{dst: dst, fd: -1}
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return s, fmt.Errorf("bind source %s: %w", src, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		link, err := os.Readlink(src)
		if err != nil {
			return s, err
		}
		s.link = link
		return s, nil
	}
	fd, err := unix.Open(src, unix.O_PATH|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return s, fmt.Errorf("bind source %s: %w", src, err)
	}
	s.fd = fd
	s.isDir = st.Mode&unix.S_IFMT == unix.S_IFDIR
	return s, nil
}

func placeSource(s source) error {
	dst, err := inRoot(s.dst)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if s.link != "" {
		return os.Symlink(s.link, dst)
	}
	if s.isDir {
		err = os.Mkdir(dst, 0o755)
	} else {
		var f *os.File
		f, err = os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			f.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("bind target %s: %w", s.dst, err)
	}
	from := "/proc/self/fd/" + strconv.Itoa(s.fd)
	if err := unix.Mount(from, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", s.dst, err)
	}
	attrs := uint64(roAttrs)
	if s.device {
		attrs = unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NOEXEC
	}
	if err := unix.MountSetattr(-1, dst, unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: attrs}); err != nil {
		return fmt.Errorf("restrict %s: %w", s.dst, err)
	}
	return nil
}

// warmSize is the size of the writable tmpfs mounts until the run's own
// sizes arrive: nothing is written to them before.
var warmSize = TmpfsSize{Bytes: 4096, Inodes: 16}

// resizeTmpfs gives a writable tmpfs the run's size and inode limit.
func resizeTmpfs(dir string, size TmpfsSize) error {
	if size.Bytes <= 0 || size.Inodes <= 0 {
		return fmt.Errorf("tmpfs %s: size and inodes must be positive", dir)
	}
	opts := fmt.Sprintf("size=%d,nr_inodes=%d", size.Bytes, size.Inodes)
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("resize %s: %w", dir, err)
	}
	return nil
}

// mountTmpfs mounts a private size- and inode-limited tmpfs owned by the
// box's user.
func mountTmpfs(dst string, size TmpfsSize, uid, gid int, mode os.FileMode) error {
	if size.Bytes <= 0 || size.Inodes <= 0 {
		return fmt.Errorf("tmpfs %s: size and inodes must be positive", dst)
	}
	opts := fmt.Sprintf("size=%d,nr_inodes=%d,mode=%o,uid=%d,gid=%d", size.Bytes, size.Inodes, mode, uid, gid)
	return unix.Mount("tmpfs", dst, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts)
}
