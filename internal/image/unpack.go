package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"strings"
	"syscall"
)

// ErrBadImage marks a pull refused because of what the image holds: an
// unsafe entry (a ".." element, a hard link out of the root, a path through
// a symlink that leaves it), an unsupported platform or media type, or a
// bound exceeded. It is the image's fault, not the store's; a registry that
// cannot be reached or a blob that fails its digest is not ErrBadImage.
var ErrBadImage = errors.New("image refused")

// Whiteout names (OCI image spec, "Whiteouts"; AUFS's convention, which
// Docker kept).
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh." // AUFS bookkeeping (.wh..wh.plnk…), ignored
	whiteoutOpaque = ".wh..wh..opq"
)

// maxLayerNames bounds the bytes of names one layer may make the unpacker
// remember (the paths it wrote, for opaque whiteouts).
const maxLayerNames = 128 << 20

// unpacker applies layers, in order, to one root directory through an
// os.Root, which confines every operation to that directory: a path may run
// through symlinks only as long as they resolve inside it, and an absolute
// symlink target is never resolved (openat2-like RESOLVE_BENEATH semantics,
// implemented by the standard library with openat and O_NOFOLLOW; it is what
// stops CVE-2018-15664-style and CVE-2019-14271-style escapes through
// symlinks planted by an earlier entry).
type unpacker struct {
	root *os.Root
	log  *slog.Logger

	maxImage int64 // Config.MaxImage
	budget   int64 // bytes the image may still write
	entries  int   // tar entries the image may still have
	stream   int64 // tar bytes the image may still make us read
}

func newUnpacker(root *os.Root, maxImage int64, log *slog.Logger) *unpacker {
	return &unpacker{
		root:     root,
		log:      log,
		maxImage: maxImage,
		budget:   maxImage,
		entries:  maxImageEntries,
		stream:   streamBound(maxImage),
	}
}

// layerState is what one layer's entries need to know about the layer's
// earlier entries.
type layerState struct {
	written    map[string]struct{} // paths this layer created
	holds      map[string]struct{} // directories holding a path this layer created
	opaqueDone map[string]struct{} // directories already cleared of lower layers
	nameBytes  int
	skipped    int // devices and FIFOs not created
}

// apply unpacks one layer's tar stream r into the root and reads r to its
// end: bytes may follow the tar's end marker, and whoever verifies the
// stream does so at its end. Its errors name the layer (from 0) and the
// entry.
func (u *unpacker) apply(ctx context.Context, layer int, r io.Reader) error {
	br := &boundedReader{r: r, left: &u.stream}
	tr := tar.NewReader(br)
	l := &layerState{
		written:    make(map[string]struct{}),
		holds:      make(map[string]struct{}),
		opaqueDone: make(map[string]struct{}),
	}
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("layer %d: read entry %d: %w", layer, n, err)
		}
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if n >= maxLayerEntries {
			return fmt.Errorf("layer %d: %w: more than %d entries", layer, ErrBadImage, maxLayerEntries)
		}
		if u.entries--; u.entries < 0 {
			return fmt.Errorf("layer %d: %w: more than %d entries in the image", layer, ErrBadImage, maxImageEntries)
		}
		if err := u.entry(l, hdr, tr); err != nil {
			return fmt.Errorf("layer %d: entry %s: %w", layer, quote(hdr.Name), blame(err))
		}
	}
	if l.skipped > 0 {
		u.log.Info("devices and FIFOs in layer not created", "layer", layer, "count", l.skipped)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return fmt.Errorf("layer %d: read past the tar's end: %w", layer, err)
	}
	return nil
}

// entry applies one tar entry.
func (u *unpacker) entry(l *layerState, hdr *tar.Header, body io.Reader) error {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if base := path.Base(name); strings.HasPrefix(base, whiteoutPrefix) {
		// Whiteouts are instructions, never files of the image.
		return u.whiteout(l, path.Dir(name), base)
	}
	if name == "." && hdr.Typeflag != tar.TypeDir {
		return fmt.Errorf("%w: the root can only be a directory", ErrBadImage)
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		err = u.dir(name, hdr)
	case tar.TypeReg, tar.TypeGNUSparse:
		err = u.file(name, hdr, body)
	case tar.TypeSymlink:
		err = u.symlink(name, hdr.Linkname)
	case tar.TypeLink:
		err = u.hardlink(name, hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		// Neutralised: a device node would give a box whatever the
		// device holds (CVE-2019-19921-style), and a FIFO can block
		// readers forever. What the lower layers had there goes, as it
		// would have been replaced.
		l.skipped++
		return u.root.RemoveAll(name)
	default:
		// PAX global headers, GNU volume labels and the like carry no
		// file.
		return nil
	}
	if err != nil {
		return err
	}
	return l.record(name)
}

// cleanName turns a tar entry's name into a path relative to the root, or "."
// for the root itself. It refuses names the unpacker will not touch rather
// than guess what they mean: an empty name, a NUL byte (the kernel would cut
// the name there), a ".." element anywhere (legitimate layers have none, and
// cleaning one away would hide what the entry aimed at), more than maxPathLen
// bytes or maxDepth elements.
func cleanName(raw string) (string, error) {
	switch {
	case raw == "":
		return "", fmt.Errorf("%w: empty name", ErrBadImage)
	case strings.IndexByte(raw, 0) >= 0:
		return "", fmt.Errorf("%w: NUL byte in name", ErrBadImage)
	case len(raw) > maxPathLen:
		return "", fmt.Errorf("%w: name longer than %d bytes", ErrBadImage, maxPathLen)
	}
	for el := range strings.SplitSeq(raw, "/") {
		if el == ".." {
			return "", fmt.Errorf("%w: name has a \"..\" element", ErrBadImage)
		}
	}
	// Rooted, then relative: strips leading "/" and "./", doubled and
	// trailing slashes and "." elements.
	name := path.Clean("/" + raw)[1:]
	if name == "" {
		return ".", nil
	}
	if strings.Count(name, "/") >= maxDepth {
		return "", fmt.Errorf("%w: name deeper than %d elements", ErrBadImage, maxDepth)
	}
	return name, nil
}

// whiteout applies the whiteout named base in directory dir: ".wh.<name>"
// removes <name> as the lower layers left it, ".wh..wh..opq" hides every
// entry of dir that this layer did not create.
func (u *unpacker) whiteout(l *layerState, dir, base string) error {
	if base == whiteoutOpaque {
		return u.opaque(l, dir)
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return nil
	}
	target := strings.TrimPrefix(base, whiteoutPrefix)
	if target == "" || target == "." || target == ".." {
		return fmt.Errorf("%w: whiteout names no entry of its directory", ErrBadImage)
	}
	return u.root.RemoveAll(path.Join(dir, target))
}

// opaque clears dir of what the lower layers put there (and, below it, in
// directories this layer kept), keeping what this layer created: the
// marker may come before or after the layer's own entries in dir.
func (u *unpacker) opaque(l *layerState, dir string) error {
	if _, ok := l.opaqueDone[dir]; ok {
		return nil
	}
	fi, err := u.root.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return nil
	}
	return u.clearLower(l, dir)
}

func (u *unpacker) clearLower(l *layerState, dir string) error {
	// Each directory is listed once per layer, however many markers
	// name it or its parents: a layer of markers costs no more than the
	// entries it clears.
	l.opaqueDone[dir] = struct{}{}
	d, err := u.root.Open(dir)
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		p := path.Join(dir, n)
		_, wrote := l.written[p]
		_, holds := l.holds[p]
		if !wrote && !holds {
			if err := u.root.RemoveAll(p); err != nil {
				return err
			}
			continue
		}
		fi, err := u.root.Lstat(p)
		if err != nil {
			return err
		}
		if _, done := l.opaqueDone[p]; fi.IsDir() && !done {
			if err := u.clearLower(l, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// record notes that this layer created name.
func (l *layerState) record(name string) error {
	if name == "." {
		return nil
	}
	if _, ok := l.written[name]; !ok {
		if l.nameBytes += len(name); l.nameBytes > maxLayerNames {
			return fmt.Errorf("%w: names in layer exceed %d bytes", ErrBadImage, maxLayerNames)
		}
		l.written[name] = struct{}{}
	}
	// The parents are substrings of name: no more memory than name.
	for d := path.Dir(name); d != "."; d = path.Dir(d) {
		if _, ok := l.holds[d]; ok {
			break
		}
		l.holds[d] = struct{}{}
	}
	return nil
}

// dir creates directory name, or merges with the lower layers' directory
// there. The mode keeps the owner's rwx, because later layers are written
// by the store's owner; boxes see the root read-only anyway.
func (u *unpacker) dir(name string, hdr *tar.Header) error {
	if name == "." {
		// The root stays 0755 whatever the layer says: boxes' uids
		// must traverse it.
		return nil
	}
	fi, err := u.root.Lstat(name)
	switch {
	case err == nil && fi.IsDir():
	case err == nil:
		// A file or a symlink (never followed) gives way.
		if err := u.root.RemoveAll(name); err != nil {
			return err
		}
		if err := u.root.Mkdir(name, 0o700); err != nil {
			return err
		}
	case errors.Is(err, fs.ErrNotExist):
		if err := u.parent(name); err != nil {
			return err
		}
		if err := u.root.Mkdir(name, 0o700); err != nil {
			return err
		}
	default:
		return err
	}
	return u.root.Chmod(name, dirMode(hdr.Mode))
}

// file creates regular file name anew (whatever was there goes first, so a
// symlink or hard link left by a lower layer is replaced, never written
// through) with at most hdr.Size bytes of the layer.
func (u *unpacker) file(name string, hdr *tar.Header, body io.Reader) error {
	if hdr.Size < 0 {
		return fmt.Errorf("%w: negative size", ErrBadImage)
	}
	if hdr.Size > u.budget {
		return fmt.Errorf("%w: %d more bytes would take the image past its bound of %d", ErrBadImage, hdr.Size, u.maxImage)
	}
	if err := u.parent(name); err != nil {
		return err
	}
	if err := u.root.RemoveAll(name); err != nil {
		return err
	}
	f, err := u.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	n, err := io.CopyN(f, body, hdr.Size)
	u.budget -= n
	if err != nil {
		f.Close()
		if err == io.EOF {
			return fmt.Errorf("layer ends after %d of the entry's %d bytes: %w", n, hdr.Size, io.ErrUnexpectedEOF)
		}
		return err
	}
	if err := f.Chmod(fileMode(hdr.Mode)); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if !hdr.ModTime.IsZero() {
		// Best effort (the kernel refuses some times): only caches
		// keyed on mtimes, like Python's .pyc, care.
		_ = u.root.Chtimes(name, hdr.ModTime, hdr.ModTime)
	}
	return nil
}

// symlink creates symlink name with target verbatim. The target is never
// followed on the host: the unpacker resolves paths only through the
// os.Root, and boxes resolve it inside their own root.
func (u *unpacker) symlink(name, target string) error {
	switch {
	case target == "":
		return fmt.Errorf("%w: empty symlink target", ErrBadImage)
	case strings.IndexByte(target, 0) >= 0:
		return fmt.Errorf("%w: NUL byte in symlink target", ErrBadImage)
	case len(target) > maxPathLen:
		return fmt.Errorf("%w: symlink target longer than %d bytes", ErrBadImage, maxPathLen)
	}
	if err := u.parent(name); err != nil {
		return err
	}
	if err := u.root.RemoveAll(name); err != nil {
		return err
	}
	return u.root.Symlink(target, name)
}

// hardlink links name to target, which must already be a regular file of
// the root. Anything else is refused: a link to a host file (a target
// outside the root, CVE-2018-15664's cousin in tar extractors) or to a
// symlink or directory has no place in an image.
func (u *unpacker) hardlink(name, linkname string) error {
	target, err := cleanName(linkname)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	if target == name {
		return nil
	}
	fi, err := u.root.Lstat(target)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: hard link target %s is not in the image", ErrBadImage, quote(linkname))
		}
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: hard link target %s is not a regular file", ErrBadImage, quote(linkname))
	}
	if err := u.parent(name); err != nil {
		return err
	}
	if err := u.root.RemoveAll(name); err != nil {
		return err
	}
	return u.root.Link(target, name)
}

// parent makes sure the directory holding name exists, creating missing
// directories 0755 as Docker does. It resolves existing symlinks only as
// the os.Root allows.
func (u *unpacker) parent(name string) error {
	dir := path.Dir(name)
	if dir == "." {
		return nil
	}
	if fi, err := u.root.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%w: parent %s is not a directory", ErrBadImage, quote(dir))
		}
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for i := 0; i <= len(dir); i++ {
		if i < len(dir) && dir[i] != '/' {
			continue
		}
		p := dir[:i]
		fi, err := u.root.Stat(p)
		switch {
		case err == nil && fi.IsDir():
			continue
		case err == nil:
			return fmt.Errorf("%w: parent %s is not a directory", ErrBadImage, quote(p))
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
		// Mkdir, not MkdirAll, then Chmod: the umask must not decide
		// whether boxes can traverse the directory.
		if err := u.root.Mkdir(p, 0o700); err != nil {
			return err
		}
		if err := u.root.Chmod(p, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// fileMode keeps the permission bits of a tar mode, less setuid, setgid and
// sticky (a setuid file in a box is a privilege escalation waiting for a
// kernel bug) and less group and other write (see the package doc).
func fileMode(mode int64) fs.FileMode {
	return fs.FileMode(mode) & 0o755
}

// dirMode is fileMode with the owner's rwx, which later layers need.
func dirMode(mode int64) fs.FileMode {
	return fileMode(mode) | 0o700
}

// blame marks an error met while applying an entry as the image's fault,
// unless it is the store's: a full disk, a quota, an I/O error, a
// cancellation. What remains (EEXIST, ENOTDIR, ELOOP, a path that escapes
// the root…) is what the layer's entries made happen.
func blame(err error) error {
	if errors.Is(err, ErrBadImage) {
		return err
	}
	for _, ours := range []error{
		syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EROFS, syscall.ENOMEM,
		syscall.EMFILE, syscall.ENFILE, context.Canceled, context.DeadlineExceeded,
		io.ErrUnexpectedEOF,
	} {
		if errors.Is(err, ours) {
			return err
		}
	}
	return fmt.Errorf("%w: %w", ErrBadImage, err)
}

// quote quotes a name from a layer for an error message or a log line,
// escaping control characters and cutting it short.
func quote(s string) string {
	const max = 200
	if len(s) > max {
		return fmt.Sprintf("%q…", s[:max])
	}
	return fmt.Sprintf("%q", s)
}

// boundedReader reads from r while *left, shared by every layer of an
// image, allows.
type boundedReader struct {
	r    io.Reader
	left *int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if *b.left <= 0 {
		return 0, fmt.Errorf("%w: layers hold more tar bytes than the image's bound allows", ErrBadImage)
	}
	if int64(len(p)) > *b.left {
		p = p[:*b.left]
	}
	n, err := b.r.Read(p)
	*b.left -= int64(n)
	return n, err
}
