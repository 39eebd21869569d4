package image

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// useLockPath is the lock file of image d: shared while Used, exclusive
// while being removed.
func (s *Store) useLockPath(d string) string {
	return filepath.Join(s.useDir, dirName(d)+".lock")
}

// Use marks img as used by a box until release is called (release is
// idempotent): neither eviction nor Prune removes it meanwhile, in this
// process or another. It also makes img the most recently used.
//
// Call it as soon as Ensure returns: an image not yet Used may be evicted
// by a concurrent pull. If that happened, Use logs it and the box will fail
// to find its root.
func (s *Store) Use(img *Image) (release func()) {
	d := img.Digest
	now := time.Now()
	s.mu.Lock()
	s.used[d] = now
	stale := now.Sub(s.persisted[d]) > usedPersistEvery
	u := s.uses[d]
	first := u == nil
	if first {
		u = &use{}
		s.uses[d] = u
	}
	u.n++
	s.mu.Unlock()

	if first {
		// Shared with every other user of the image; a removal takes
		// it exclusively.
		f, err := flock(s.useLockPath(d), lockSH)
		if err != nil {
			s.log.Error("image store: lock image for use", "digest", d, "err", err)
		}
		s.mu.Lock()
		if s.uses[d] == u && u.n > 0 {
			u.f = f
			f = nil
		}
		s.mu.Unlock()
		if f != nil {
			f.Close()
		}
	}
	if _, err := os.Lstat(img.Root); err != nil {
		s.log.Warn("image store: image in use was removed", "digest", d, "err", err)
	}
	if stale {
		s.touch(d)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			u.n--
			var f *os.File
			if u.n == 0 {
				delete(s.uses, d)
				f, u.f = u.f, nil
			}
			s.mu.Unlock()
			if f != nil {
				f.Close()
			}
		})
	}
}

// touch writes this process's Used times into the index (best effort: they
// only order evictions).
func (s *Store) touch(d string) {
	unlock, err := s.lockIndex()
	if err != nil {
		s.log.Warn("image store: record use", "digest", d, "err", err)
		return
	}
	defer unlock()
	ix, _, err := s.readIndex()
	if err == nil && ix.Images[d] != nil {
		err = s.writeIndex(ix)
	}
	if err != nil {
		s.log.Warn("image store: record use", "digest", d, "err", err)
	}
}

// busy reports whether image d is in use, here or in another process. When
// it is not, it returns the image's use lock held exclusively, so that no
// Use starts until the caller has removed the image and closed it.
func (s *Store) busy(d string) (hold *os.File, busy bool, err error) {
	s.mu.Lock()
	_, inUse := s.uses[d]
	s.mu.Unlock()
	if inUse {
		return nil, true, nil
	}
	f, err := flock(s.useLockPath(d), lockEX|lockNB)
	if errors.Is(err, errBusy) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	return f, false, nil
}
