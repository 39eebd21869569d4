package image

import (
	"cmp"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Config of a store.
type Config struct {
	// Dir is the store's directory, created 0711 if absent (its parents
	// are the caller's business).
	Dir string
	// MaxBytes bounds the unpacked size of all images: after a pull,
	// least recently used images go until the store fits. 0 is no bound.
	MaxBytes int64
	// MaxImage bounds the bytes one image writes when unpacked (4 GiB
	// when 0); a bigger image fails its pull.
	MaxImage int64
	// Insecure lists the registries (host, meaning any port, or
	// host:port) allowed over plain HTTP besides loopback ones
	// (localhost, 127.0.0.0/8, ::1), which always are, as in Docker.
	Insecure []string
	// Logger receives the store's events; nil discards them.
	Logger *slog.Logger
}

// Store is a content-addressed store of unpacked images in one directory,
// shared safely by the processes that open it (a server and a CLI): they
// coordinate through flock(2) on files in the directory. Its methods are
// safe for concurrent use.
type Store struct {
	dir, indexPath, rootsDir, tmpDir, useDir string

	maxBytes, maxImage int64
	insecure           map[string]bool
	log                *slog.Logger
	transport          http.RoundTripper
	keychain           authn.Keychain

	flights flights

	mu        sync.Mutex
	cached    *cachedIndex
	used      map[string]time.Time // last Use in this process, by digest
	persisted map[string]time.Time // Used as last written to the index
	uses      map[string]*use      // images in use in this process
}

// use counts the Uses of one image in this process; f holds the image's use
// lock shared for all of them.
type use struct {
	n int
	f *os.File
}

// Image is one unpacked image in the store.
type Image struct {
	// Digest is the image manifest's digest, "sha256:…" (for an index,
	// that of the manifest chosen for this platform).
	Digest string
	// Refs are the references that resolved to it, normalised by
	// name.ParseReference(ref).Name(), sorted.
	Refs []string
	// Root is the absolute path of its root filesystem, to be read by
	// boxes and never written.
	Root string
	// Env (KEY=VALUE) and WorkingDir are the image config's, as is.
	Env        []string
	WorkingDir string
	// Size is the bytes of its regular files (hard links counted once).
	Size   int64
	Pulled time.Time
	// Used is the time of the last Use, or Pulled.
	Used time.Time
}

// Progress reports the bytes of layer data received so far out of the
// total, both as compressed in the registry (from the manifest). It is
// called from the pulling goroutine: once with done 0, then every 256 KiB
// or so, and with done == total at the end.
type Progress func(done, total int64)

// usedPersistEvery is how stale an image's Used time in index.json may get
// before a Use writes it: Used only orders evictions.
const usedPersistEvery = time.Minute

// Open opens the store in cfg.Dir, creating its directories, and removes
// the leftovers of interrupted pulls and removals when no other process is
// pulling into it.
func Open(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("open image store: no directory")
	}
	if cfg.MaxBytes < 0 || cfg.MaxImage < 0 {
		return nil, errors.New("open image store: negative size bound")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	s := &Store{
		dir:       dir,
		indexPath: filepath.Join(dir, "index.json"),
		rootsDir:  filepath.Join(dir, "roots"),
		tmpDir:    filepath.Join(dir, "tmp"),
		useDir:    filepath.Join(dir, "use"),
		maxBytes:  cfg.MaxBytes,
		maxImage:  cmp.Or(cfg.MaxImage, defaultMaxImage),
		insecure:  make(map[string]bool),
		log:       cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)),
		keychain:  authn.DefaultKeychain,
		used:      make(map[string]time.Time),
		persisted: make(map[string]time.Time),
		uses:      make(map[string]*use),
	}
	s.transport = &httpGuard{allow: s.plainHTTP, next: remote.DefaultTransport}
	for _, h := range cfg.Insecure {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" || strings.ContainsAny(h, "/@ ") {
			return nil, fmt.Errorf("open image store: insecure registry %q is not a host or host:port", h)
		}
		s.insecure[h] = true
	}
	// Boxes' uids traverse Dir and roots/ to their root; nobody else
	// needs tmp/ (half-unpacked, hostile) or use/.
	for _, d := range []struct {
		path string
		mode fs.FileMode
	}{{dir, 0o711}, {s.rootsDir, 0o711}, {s.tmpDir, 0o700}, {s.useDir, 0o700}} {
		if err := mkdir(d.path, d.mode); err != nil {
			return nil, fmt.Errorf("open image store: %w", err)
		}
	}
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o001 == 0 {
		s.log.Warn("image store directory not traversable by other users: boxes cannot reach image roots",
			"dir", dir, "mode", fi.Mode().Perm().String())
	}
	if err := s.cleanup(); err != nil {
		return nil, fmt.Errorf("open image store %s: %w", dir, err)
	}
	return s, nil
}

// mkdir creates directory p with exactly mode (whatever the umask), and
// leaves an existing one alone.
func mkdir(p string, mode fs.FileMode) error {
	err := os.Mkdir(p, mode)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return os.Chmod(p, mode)
}

// cleanup empties tmp/ and drops what a crash left half-done: roots the
// index does not know, index entries without a root, temporary index files
// and use locks of gone images. It does nothing while another process pulls.
func (s *Store) cleanup() error {
	f, err := flock(filepath.Join(s.dir, "tmp.lock"), lockEX|lockNB)
	if errors.Is(err, errBusy) {
		s.log.Debug("image store busy: leftovers kept for a later open")
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	tmp, err := os.ReadDir(s.tmpDir)
	if err != nil {
		return err
	}
	var left []string
	for _, e := range tmp {
		left = append(left, filepath.Join(s.tmpDir, e.Name()))
	}
	s.discard(left)

	unlock, err := s.lockIndex()
	if err != nil {
		return err
	}
	defer unlock()
	ix, _, err := s.readIndex()
	if err != nil {
		return err
	}
	roots, err := os.ReadDir(s.rootsDir)
	if err != nil {
		return err
	}
	var orphans []string
	for _, e := range roots {
		d := strings.Replace(e.Name(), "-", ":", 1)
		if !digestRE.MatchString(d) {
			s.log.Warn("image store: unknown entry in roots left alone", "name", e.Name())
			continue
		}
		if ix.Images[d] == nil {
			orphans = append(orphans, d)
		}
	}
	changed := false
	for d := range ix.Images {
		if _, err := os.Lstat(filepath.Join(s.rootsDir, dirName(d))); errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("image store: image without a root dropped", "digest", d)
			delete(ix.Images, d)
			changed = true
		}
	}
	if changed {
		ix.refresh()
		if err := s.writeIndex(ix); err != nil {
			return err
		}
	}
	var moved []string
	for _, d := range orphans {
		dst := filepath.Join(s.tmpDir, "orphan-"+rand.Text())
		if err := os.Rename(filepath.Join(s.rootsDir, dirName(d)), dst); err != nil {
			return err
		}
		moved = append(moved, dst)
	}
	s.discard(moved)
	temps, _ := filepath.Glob(filepath.Join(s.dir, indexTempPrefix+"*"))
	for _, t := range temps {
		os.Remove(t)
	}
	uses, err := os.ReadDir(s.useDir)
	if err != nil {
		return err
	}
	for _, e := range uses {
		d := strings.Replace(strings.TrimSuffix(e.Name(), ".lock"), "-", ":", 1)
		if ix.Images[d] == nil {
			os.Remove(filepath.Join(s.useDir, e.Name()))
		}
	}
	return nil
}

// discard removes directories of tmp/ (whole hostile trees: through an
// os.Root, which never follows their symlinks out).
func (s *Store) discard(paths []string) {
	if len(paths) == 0 {
		return
	}
	tmp, err := os.OpenRoot(s.tmpDir)
	if err != nil {
		s.log.Error("image store: remove temporary files", "err", err)
		return
	}
	defer tmp.Close()
	for _, p := range paths {
		if err := tmp.RemoveAll(filepath.Base(p)); err != nil {
			s.log.Error("image store: remove temporary files", "path", p, "err", err)
		}
	}
}

// Lookup returns the image ref names in the store, without asking any
// registry: the image a tag was last pulled as, or the image with a digest.
func (s *Store) Lookup(ref string) (*Image, bool) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, false
	}
	return s.lookup(r)
}

func (s *Store) lookup(r name.Reference) (*Image, bool) {
	ix, err := s.index()
	if err != nil {
		s.log.Error("image store: read index", "err", err)
		return nil, false
	}
	if d, ok := ix.byRef[r.Name()]; ok {
		return s.image(d, ix.Images[d]), true
	}
	if dr, ok := r.(name.Digest); ok {
		if rec := ix.Images[dr.DigestStr()]; rec != nil {
			return s.image(dr.DigestStr(), rec), true
		}
	}
	return nil, false
}

// List returns every image of the store, sorted by first ref (images no ref
// names first), then digest.
func (s *Store) List() ([]Image, error) {
	ix, err := s.index()
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	imgs := make([]Image, 0, len(ix.Images))
	for d, rec := range ix.Images {
		imgs = append(imgs, *s.image(d, rec))
	}
	sortImages(imgs)
	return imgs, nil
}

func sortImages(imgs []Image) {
	slices.SortFunc(imgs, func(a, b Image) int {
		var ra, rb string
		if len(a.Refs) > 0 {
			ra = a.Refs[0]
		}
		if len(b.Refs) > 0 {
			rb = b.Refs[0]
		}
		return cmp.Or(cmp.Compare(ra, rb), cmp.Compare(a.Digest, b.Digest))
	})
}

// image returns the Image of record rec, which the caller must not modify.
func (s *Store) image(d string, rec *record) *Image {
	used := rec.Used
	s.mu.Lock()
	if t := s.used[d]; t.After(used) {
		used = t
	}
	s.mu.Unlock()
	return &Image{
		Digest:     d,
		Refs:       slices.Clone(rec.Refs),
		Root:       filepath.Join(s.rootsDir, dirName(d)),
		Env:        slices.Clone(rec.Env),
		WorkingDir: rec.WorkingDir,
		Size:       rec.Size,
		Pulled:     rec.Pulled,
		Used:       used,
	}
}
