package image

import (
	"cmp"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
)

// Prune removes every image that no ref in keep names (by tag, or by
// digest) and that nothing Uses, and returns what went, sorted as List.
func (s *Store) Prune(keep []string) ([]Image, error) {
	keepRefs := make(map[string]bool)
	keepDigests := make(map[string]bool)
	for _, k := range keep {
		r, err := name.ParseReference(k)
		if err != nil {
			return nil, fmt.Errorf("prune images: keep %s: %w", quote(k), err)
		}
		keepRefs[r.Name()] = true
		if dr, ok := r.(name.Digest); ok {
			keepDigests[dr.DigestStr()] = true
		}
	}
	unlockTmp, err := s.lockTmp()
	if err != nil {
		return nil, fmt.Errorf("prune images: %w", err)
	}
	defer unlockTmp()
	unlock, err := s.lockIndex()
	if err != nil {
		return nil, fmt.Errorf("prune images: %w", err)
	}
	ix, _, err := s.readIndex()
	if err != nil {
		unlock()
		return nil, fmt.Errorf("prune images: %w", err)
	}
	var victims []string
	var holds []*os.File
	defer closeAll(&holds)
	for d, rec := range ix.Images {
		if keepDigests[d] || slices.ContainsFunc(rec.Refs, func(r string) bool { return keepRefs[r] }) {
			continue
		}
		hold, busy, err := s.busy(d)
		if err != nil {
			unlock()
			return nil, fmt.Errorf("prune images: %w", err)
		}
		if busy {
			continue
		}
		victims = append(victims, d)
		holds = append(holds, hold)
	}
	var removed []Image
	var moved []string
	if len(victims) > 0 {
		moved, removed, err = s.remove(ix, victims)
	}
	unlock()
	s.discard(moved)
	if err != nil {
		return nil, fmt.Errorf("prune images: %w", err)
	}
	sortImages(removed)
	for _, im := range removed {
		s.log.Info("image pruned", "digest", im.Digest, "refs", im.Refs, "size", im.Size)
	}
	return removed, nil
}

// evict picks the least recently used images that must go for the store
// to fit in MaxBytes, sparing images in use and image just (just pulled).
// It returns their digests and their use locks, held. The caller holds the
// index lock.
func (s *Store) evict(ix *index, just string) (victims []string, holds []*os.File) {
	if s.maxBytes <= 0 {
		return nil, nil
	}
	var total int64
	for _, rec := range ix.Images {
		total += rec.Size
	}
	if total <= s.maxBytes {
		return nil, nil
	}
	candidates := make([]Image, 0, len(ix.Images))
	for d, rec := range ix.Images {
		if d != just {
			candidates = append(candidates, *s.image(d, rec))
		}
	}
	slices.SortFunc(candidates, func(a, b Image) int {
		return cmp.Or(a.Used.Compare(b.Used), cmp.Compare(a.Digest, b.Digest))
	})
	for _, c := range candidates {
		if total <= s.maxBytes {
			break
		}
		hold, busy, err := s.busy(c.Digest)
		if err != nil {
			s.log.Warn("image store: check whether image is in use", "digest", c.Digest, "err", err)
			continue
		}
		if busy {
			continue
		}
		victims = append(victims, c.Digest)
		holds = append(holds, hold)
		total -= c.Size
	}
	if total > s.maxBytes {
		s.log.Warn("image store exceeds its bound: the rest is in use or just pulled",
			"size", total, "max_bytes", s.maxBytes)
	}
	return victims, holds
}

// remove drops images victims from ix, writes ix, then moves their roots
// into tmp/, in that order so that the index never names a missing root.
// It returns the moved directories, for the caller to discard once it has
// released the index lock, and what was removed. The caller holds the index
// lock, tmp.lock shared and the victims' use locks.
func (s *Store) remove(ix *index, victims []string) (moved []string, removed []Image, err error) {
	for _, d := range victims {
		removed = append(removed, *s.image(d, ix.Images[d]))
		delete(ix.Images, d)
	}
	ix.refresh()
	if err := s.writeIndex(ix); err != nil {
		return nil, nil, err
	}
	for _, d := range victims {
		dst := filepath.Join(s.tmpDir, "del-"+rand.Text())
		if err := os.Rename(filepath.Join(s.rootsDir, dirName(d)), dst); err != nil {
			// Out of the index already; the next Open removes it.
			s.log.Error("image store: move removed root", "digest", d, "err", err)
			continue
		}
		moved = append(moved, dst)
		os.Remove(s.useLockPath(d))
		s.mu.Lock()
		delete(s.used, d)
		delete(s.persisted, d)
		s.mu.Unlock()
	}
	return moved, removed, nil
}

func closeAll(fs *[]*os.File) {
	for _, f := range *fs {
		if f != nil {
			f.Close()
		}
	}
}
