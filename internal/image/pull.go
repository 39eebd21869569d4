package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Pull asks the registry what ref names now and returns that image, unpacked
// into the store. When the store already holds that digest, Pull only
// records ref for it. Concurrent pulls of one ref, or of refs naming one
// digest, share one download; p (which may be nil) sees its progress.
func (s *Store) Pull(ctx context.Context, ref string, p Progress) (*Image, error) {
	r, err := s.parseRef(ref)
	if err != nil {
		return nil, err
	}
	return s.pull(ctx, r, p)
}

// Ensure returns the image ref names in the store, as Lookup, and pulls it
// when the store has none. A digest ref found in the store needs no
// registry; a tag found there is not checked for a newer image (Pull is).
func (s *Store) Ensure(ctx context.Context, ref string, p Progress) (*Image, error) {
	r, err := s.parseRef(ref)
	if err != nil {
		return nil, err
	}
	if img, ok := s.lookup(r); ok {
		return img, nil
	}
	return s.pull(ctx, r, p)
}

func (s *Store) pull(ctx context.Context, r name.Reference, p Progress) (*Image, error) {
	return s.flights.do(ctx, "ref "+r.Name(), p, func(ctx context.Context, p Progress) (*Image, error) {
		return s.resolve(ctx, r, p)
	})
}

// resolve asks the registry for the digest r names and makes sure the store
// holds that image, with r recorded.
func (s *Store) resolve(ctx context.Context, r name.Reference, p Progress) (*Image, error) {
	img, err := remote.Image(r, s.remoteOptions(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", r.Name(), err)
	}
	h, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", r.Name(), err)
	}
	d := h.String()
	if !digestRE.MatchString(d) {
		return nil, fmt.Errorf("pull %s: %w: digest %s is not sha256", r.Name(), ErrBadImage, quote(d))
	}
	if im, ok, err := s.recordRef(r.Name(), d); err != nil || ok {
		return im, err
	}
	im, err := s.flights.do(ctx, "digest "+d, p, func(ctx context.Context, p Progress) (*Image, error) {
		return s.fetch(ctx, r, d, p)
	})
	if err != nil {
		return nil, err
	}
	if slices.Contains(im.Refs, r.Name()) {
		return im, nil
	}
	// Pulled for another ref naming the same digest.
	im, ok, err := s.recordRef(r.Name(), d)
	if err == nil && !ok {
		err = fmt.Errorf("pull %s: image %s removed before its ref was recorded", r.Name(), d)
	}
	return im, err
}

// recordRef makes ref name image d, if the store has it.
func (s *Store) recordRef(ref, d string) (*Image, bool, error) {
	unlock, err := s.lockIndex()
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	ix, _, err := s.readIndex()
	if err != nil {
		return nil, false, err
	}
	rec := ix.Images[d]
	if rec == nil {
		return nil, false, nil
	}
	if ix.byRef[ref] != d || !slices.Contains(rec.Refs, ref) {
		ix.setRef(ref, d)
		if err := s.writeIndex(ix); err != nil {
			return nil, false, err
		}
		s.log.Info("image ref recorded", "ref", ref, "digest", d)
	}
	return s.image(d, rec), true, nil
}

// fetch downloads image d of r's repository, unpacks it into tmp/ and
// commits it into the store with ref r.
func (s *Store) fetch(ctx context.Context, r name.Reference, d string, p Progress) (*Image, error) {
	start := time.Now()
	// Asked again by digest, under this call's own context: the image
	// object resolve got is bound to the context of whoever resolved it.
	img, err := remote.Image(r.Context().Digest(d), s.remoteOptions(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", r.Name(), err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", r.Name(), err)
	}
	if err := checkManifest(m, s.maxImage); err != nil {
		return nil, fmt.Errorf("pull %s: %w", r.Name(), err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("pull %s: config: %w", r.Name(), err)
	}
	if cfg.OS != "" && cfg.OS != "linux" {
		return nil, fmt.Errorf("pull %s: %w: built for %s", r.Name(), ErrBadImage, quote(cfg.OS))
	}
	if cfg.Architecture != "" && cfg.Architecture != runtime.GOARCH {
		s.log.Warn("image built for another architecture", "ref", r.Name(), "architecture", cfg.Architecture)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", r.Name(), err)
	}

	unlockTmp, err := s.lockTmp()
	if err != nil {
		return nil, err
	}
	defer unlockTmp()
	dir, err := os.MkdirTemp(s.tmpDir, "pull-")
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", r.Name(), err)
	}
	defer func() {
		if dir != "" {
			s.discard([]string{dir})
		}
	}()
	size, err := s.unpack(ctx, dir, m, layers, p)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", r.Name(), err)
	}
	now := time.Now()
	rec := &record{
		Env:        cfg.Config.Env,
		WorkingDir: cfg.Config.WorkingDir,
		Size:       size,
		Pulled:     now,
		Used:       now,
	}
	im, committed, err := s.commit(r.Name(), d, dir, rec)
	if committed {
		dir = ""
	}
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", r.Name(), err)
	}
	s.log.Info("image pulled", "ref", r.Name(), "digest", d, "size", size,
		"layers", len(layers), "duration", time.Since(start))
	return im, nil
}

// unpack applies layers into dir, which becomes a root, and returns the
// bytes of its regular files.
func (s *Store) unpack(ctx context.Context, dir string, m *v1.Manifest, layers []v1.Layer, p Progress) (int64, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	u := newUnpacker(root, s.maxImage, s.log)
	pr := &progress{p: p}
	for _, l := range m.Layers {
		pr.total += l.Size
	}
	pr.report()
	for i, l := range layers {
		if err := readLayer(ctx, u, i, l, pr.add); err != nil {
			return 0, err
		}
	}
	if err := root.Chmod(".", 0o755); err != nil {
		return 0, err
	}
	return diskSize(root)
}

// commit moves the finished root dir into roots/ and records the image
// under ref, then evicts what MaxBytes requires. committed reports whether
// dir was moved (if not, the caller removes it): when another process
// committed the same image meanwhile, commit only records ref.
func (s *Store) commit(ref, d, dir string, rec *record) (img *Image, committed bool, err error) {
	unlock, err := s.lockIndex()
	if err != nil {
		return nil, false, err
	}
	ix, _, err := s.readIndex()
	if err != nil {
		unlock()
		return nil, false, err
	}
	if old := ix.Images[d]; old != nil {
		ix.setRef(ref, d)
		err := s.writeIndex(ix)
		unlock()
		return s.image(d, old), false, err
	}
	var moved []string
	dst := filepath.Join(s.rootsDir, dirName(d))
	if _, err := os.Lstat(dst); err == nil {
		// An orphan of a crash between a rename and an index write.
		orphan := filepath.Join(s.tmpDir, "orphan-"+filepath.Base(dir))
		if err := os.Rename(dst, orphan); err != nil {
			unlock()
			return nil, false, err
		}
		moved = append(moved, orphan)
	} else if !errors.Is(err, fs.ErrNotExist) {
		unlock()
		return nil, false, err
	}
	if err := os.Rename(dir, dst); err != nil {
		unlock()
		s.discard(moved)
		return nil, false, err
	}
	ix.Images[d] = rec
	ix.setRef(ref, d)
	victims, holds := s.evict(ix, d)
	defer closeAll(&holds)
	gone, removed, err := s.remove(ix, victims)
	if err != nil {
		// Not in the index: give the root back to the caller to remove.
		if rerr := os.Rename(dst, dir); rerr != nil {
			s.log.Error("image store: take back uncommitted root", "digest", d, "err", rerr)
		}
		unlock()
		s.discard(moved)
		return nil, false, err
	}
	unlock()
	s.discard(append(moved, gone...))
	for _, im := range removed {
		s.log.Info("image evicted", "digest", im.Digest, "refs", im.Refs, "size", im.Size, "used", im.Used)
	}
	return s.image(d, rec), true, nil
}

// checkManifest refuses, before any layer is fetched, images that could
// only fail later or that ask for what the store never does: too many
// layers, layers declaring more bytes than the image may read, a config too
// big to hold in memory, foreign layers (blobs from URLs the manifest
// chooses, a way to make the host fetch from anywhere), and artifacts that
// are not container images.
func checkManifest(m *v1.Manifest, maxImage int64) error {
	switch m.Config.MediaType {
	case types.DockerConfigJSON, types.OCIConfigJSON, "":
	default:
		return fmt.Errorf("%w: config media type %s is not a container image's", ErrBadImage, quote(string(m.Config.MediaType)))
	}
	if m.Config.Size < 0 || m.Config.Size > maxConfigSize {
		return fmt.Errorf("%w: config of %d bytes (at most %d)", ErrBadImage, m.Config.Size, maxConfigSize)
	}
	if len(m.Layers) > maxLayers {
		return fmt.Errorf("%w: %d layers (at most %d)", ErrBadImage, len(m.Layers), maxLayers)
	}
	var sum int64
	for i, l := range m.Layers {
		if len(l.URLs) > 0 {
			return fmt.Errorf("%w: layer %d is foreign (fetched from URLs)", ErrBadImage, i)
		}
		switch l.MediaType {
		case types.DockerLayer, types.DockerUncompressedLayer, types.OCILayer, types.OCILayerZStd, types.OCIUncompressedLayer, "":
		default:
			return fmt.Errorf("%w: layer %d has media type %s", ErrBadImage, i, quote(string(l.MediaType)))
		}
		if l.Size < 0 {
			return fmt.Errorf("%w: layer %d has a negative size", ErrBadImage, i)
		}
		if sum += l.Size; sum > streamBound(maxImage) {
			return fmt.Errorf("%w: layers declare more than %d bytes", ErrBadImage, streamBound(maxImage))
		}
	}
	return nil
}

// diskSize returns the bytes of the regular files under root, counting
// hard-linked files once.
func diskSize(root *os.Root) (int64, error) {
	var total int64
	seen := make(map[uint64]struct{})
	err := fs.WalkDir(root.FS(), ".", func(_ string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		if ino, nlink, ok := inode(fi); ok && nlink > 1 {
			if _, dup := seen[ino]; dup {
				return nil
			}
			seen[ino] = struct{}{}
		}
		total += fi.Size()
		return nil
	})
	return total, err
}

// progressStep is how many bytes progress waits for between reports.
const progressStep = 256 << 10

// progress turns the bytes read from layers into Progress calls.
type progress struct {
	p                  Progress
	done, total, shown int64
}

func (pr *progress) add(n int64) {
	pr.done += n
	if pr.done-pr.shown >= progressStep || pr.done >= pr.total {
		pr.report()
	}
}

func (pr *progress) report() {
	pr.shown = pr.done
	if pr.p != nil {
		pr.p(pr.done, pr.total)
	}
}
