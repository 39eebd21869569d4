package boxinit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// newRoot is where the box's root tmpfs is mounted before pivot_root. Any
// existing directory would do: the mount lives only in this box's mount
// namespace. Sources are opened before it is covered, so a source under
// /tmp still works.
const newRoot = "/tmp"

// Mount flags for the devices taken from the host: they must stay usable,
// but nothing on them is executable and no setuid bit is honoured.
const deviceAttrs = unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NOEXEC

// maxCopiedFile bounds a single-file source (ld.so.cache, ld.so.conf…),
// which is copied into the box's root tmpfs rather than bound.
const maxCopiedFile = 1 << 20

// A source is one host path the box sees, opened or read before the new
// root covers anything. Nothing of it is shared with the host at inode
// level but devices (see placeSource).
type source struct {
	dst    string
	fd     int    // O_PATH descriptor of a directory or device, or -1
	link   string // symlink target when the source is a symlink
	data   []byte // content of a regular file, copied into the box
	mode   uint32 // permission bits of a copied file
	isFile bool
	isDir  bool
}

// buildRoot makes the box's filesystem: a fresh tmpfs root holding a private
// read-only view of the host's system directories, copies of the few single
// /etc files, generated /etc files, a fresh and masked /proc, a minimal
// /dev, and private size-limited tmpfs mounts for /box, /tmp and /dev/shm;
// then pivot_root into it and detach the host's tree.
func buildRoot(cfg *Config, devDir string) error {
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
		s, err := openSource(b.Src, b.Dst, false)
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
		s, err := openSource(devDir+"/"+d, "/dev/"+d, true)
		if err != nil {
			return err
		}
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
	// The device nodes are this box's alone and bound now: their names go
	// (the spawner made the directory ours for that; a bind of an unlinked
	// node is refused, hence not earlier).
	for _, d := range cfg.Devices {
		_ = unix.Unlink(devDir + "/" + d)
	}
	_ = unix.Rmdir(devDir)
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
	if err := maskProc(filepath.Join(newRoot, "proc")); err != nil {
		return err
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

// openSource opens or reads a source before the new root covers anything.
// Directories are opened (O_PATH) to become overlays, regular files are
// read to be copied, devices are opened to be bound; nothing else is taken.
func openSource(src, dst string, device bool) (source, error) {
	s := source{dst: dst, fd: -1}
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return s, fmt.Errorf("source %s: %w", src, err)
	}
	kind := st.Mode & unix.S_IFMT
	switch {
	case kind == unix.S_IFLNK && !device:
		link, err := os.Readlink(src)
		if err != nil {
			return s, err
		}
		s.link = link
		return s, nil
	case kind == unix.S_IFREG && !device:
		data, mode, err := readBounded(src)
		if err != nil {
			return s, err
		}
		s.data, s.mode, s.isFile = data, mode, true
		return s, nil
	case kind == unix.S_IFDIR && !device, kind == unix.S_IFCHR && device:
		fd, err := unix.Open(src, unix.O_PATH|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			return s, fmt.Errorf("source %s: %w", src, err)
		}
		s.fd = fd
		s.isDir = kind == unix.S_IFDIR
		return s, nil
	}
	return s, fmt.Errorf("source %s: file type %#o is not allowed here", src, kind)
}

// readBounded reads a regular file of at most maxCopiedFile bytes.
func readBounded(src string) ([]byte, uint32, error) {
	// O_NONBLOCK: should the path have become a FIFO since the lstat, the
	// open must not wait for a writer (fstat below then refuses it).
	f, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("source %s: %w", src, err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, 0, fmt.Errorf("source %s: %w", src, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, 0, fmt.Errorf("source %s: not a regular file", src)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxCopiedFile+1))
	if err != nil {
		return nil, 0, fmt.Errorf("source %s: %w", src, err)
	}
	if len(data) > maxCopiedFile {
		return nil, 0, fmt.Errorf("source %s: larger than %d bytes, the most copied into a box", src, maxCopiedFile)
	}
	return data, st.Mode & 0o755, nil
}

// placeSource makes one source visible in the new root.
//
// A bind of a host directory would share its inodes with the host and with
// every other box, and with them every per-inode channel: inotify and
// dnotify report in real time which files others open, read and change;
// flock, POSIX and OFD locks and leases taken in one box block or are seen
// by the others and by the host. So a directory is seen through a
// read-only overlayfs mounted here, in the box's own user namespace
// (allowed since Linux 5.11): its inodes, and the locks and watches hung
// on them, belong to this box's superblock alone, while reads and mmaps
// still go to the host's page cache. Overlayfs refuses a single lower layer
// without an upper one, so the mount point itself, an empty directory of
// the root tmpfs, is the second layer. Overlayfs does not cross mounts
// below its lower layer: a source with submounts fails here (the kernel
// will not clone a tree with locked submounts) rather than show them empty.
//
// A single file is copied into the root tmpfs for the same reason.
//
// Devices are binds of nodes the spawner made for this box alone (see
// makeDevices): a box cannot make device nodes, and an overlay made in a
// user namespace is nodev.
func placeSource(s source) error {
	dst, err := inRoot(s.dst)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	switch {
	case s.link != "":
		return os.Symlink(s.link, dst)
	case s.isFile:
		f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, os.FileMode(s.mode))
		if err == nil {
			_, err = f.Write(s.data)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			return fmt.Errorf("copy %s: %w", s.dst, err)
		}
		return nil
	case s.isDir:
		return mountOverlay(s, dst)
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("bind target %s: %w", s.dst, err)
	}
	f.Close()
	from := "/proc/self/fd/" + strconv.Itoa(s.fd)
	if err := unix.Mount(from, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", s.dst, err)
	}
	if err := unix.MountSetattr(-1, dst, 0, &unix.MountAttr{Attr_set: deviceAttrs}); err != nil {
		return fmt.Errorf("restrict %s: %w", s.dst, err)
	}
	return nil
}

// mountOverlay mounts the private read-only view of a source directory.
// The layers are named through /proc/self/fd, which needs no escaping of
// overlayfs's ':' and ',' and reaches a source under newRoot.
//
// A target the root already holds as a directory (/etc, with the generated
// files, under an image's /etc) is merged: its entries lie over the
// source's.
func mountOverlay(s source, dst string) error {
	merge := false
	if err := os.Mkdir(dst, 0o755); err != nil {
		if !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("overlay target %s: %w", s.dst, err)
		}
		merge = true
	}
	here, err := unix.Open(dst, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("overlay target %s: %w", s.dst, err)
	}
	defer unix.Close(here)
	opts := fmt.Sprintf("lowerdir=/proc/self/fd/%d:/proc/self/fd/%d", s.fd, here)
	if merge {
		opts = fmt.Sprintf("lowerdir=/proc/self/fd/%d:/proc/self/fd/%d", here, s.fd)
	}
	if err := unix.Mount("overlay", dst, "overlay", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("overlay %s: %w (has the host a mount below it?)", s.dst, err)
		}
		return fmt.Errorf("overlay %s: %w", s.dst, err)
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
