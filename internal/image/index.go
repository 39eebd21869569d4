package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// indexVersion is the version of index.json this code reads and writes.
const indexVersion = 1

// index is the content of index.json: every image of the store by manifest
// digest. An image is in the index only while its root is complete in
// roots/: a commit renames the root into place before writing the index, a
// removal writes the index before moving the root away.
type index struct {
	Version int                `json:"version"`
	Images  map[string]*record `json:"images"`

	byRef map[string]string // ref → digest, built on load
}

// record is one image in index.json.
type record struct {
	Refs       []string  `json:"refs"`
	Env        []string  `json:"env,omitempty"`
	WorkingDir string    `json:"working_dir,omitempty"`
	Size       int64     `json:"size"`
	Pulled     time.Time `json:"pulled"`
	Used       time.Time `json:"used"`
}

// digestRE is the only form of digest the store accepts: it names the
// root's directory.
var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// dirName is the name of the directory in roots/ (and of the lock file in
// use/) of the image with digest d.
func dirName(d string) string {
	return strings.Replace(d, ":", "-", 1)
}

// refresh rebuilds byRef and keeps each ref on one image.
func (ix *index) refresh() {
	ix.byRef = make(map[string]string)
	for d, rec := range ix.Images {
		for _, r := range rec.Refs {
			ix.byRef[r] = d
		}
	}
}

// setRef makes ref name image d only.
func (ix *index) setRef(ref, d string) {
	for od, rec := range ix.Images {
		if od == d {
			continue
		}
		if i := slices.Index(rec.Refs, ref); i >= 0 {
			rec.Refs = slices.Delete(rec.Refs, i, i+1)
		}
	}
	rec := ix.Images[d]
	if !slices.Contains(rec.Refs, ref) {
		rec.Refs = append(rec.Refs, ref)
		slices.Sort(rec.Refs)
	}
	ix.byRef[ref] = d
}

// readIndex reads index.json afresh; a missing file is an empty store.
func (s *Store) readIndex() (*index, fs.FileInfo, error) {
	f, err := os.Open(s.indexPath)
	if errors.Is(err, fs.ErrNotExist) {
		ix := &index{Version: indexVersion, Images: map[string]*record{}}
		ix.refresh()
		return ix, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	var ix index
	if err := json.NewDecoder(f).Decode(&ix); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", s.indexPath, err)
	}
	if ix.Version != indexVersion {
		return nil, nil, fmt.Errorf("read %s: version %d, want %d", s.indexPath, ix.Version, indexVersion)
	}
	if ix.Images == nil {
		ix.Images = map[string]*record{}
	}
	for d, rec := range ix.Images {
		if !digestRE.MatchString(d) || rec == nil {
			s.log.Warn("image index: entry ignored", "digest", d)
			delete(ix.Images, d)
		}
	}
	ix.refresh()
	return &ix, fi, nil
}

// index returns the index for reading, from a cache when index.json has not
// been replaced since (every write replaces it: a new inode, mtime and
// size). The result must not be modified.
func (s *Store) index() (*index, error) {
	fi, err := os.Stat(s.indexPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	s.mu.Lock()
	c := s.cached
	s.mu.Unlock()
	if c != nil && sameVersion(c.fi, fi) {
		return c.ix, nil
	}
	ix, fi, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.cached = &cachedIndex{ix: ix, fi: fi}
	s.mu.Unlock()
	return ix, nil
}

// cachedIndex is the index as last read or written, with the file it came
// from (nil when there was none).
type cachedIndex struct {
	ix *index
	fi fs.FileInfo
}

func sameVersion(a, b fs.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

// writeIndex replaces index.json with ix (temp file, fsync, rename), after
// folding in the Used times this process holds in memory. The caller holds
// the index lock.
func (s *Store) writeIndex(ix *index) error {
	s.mu.Lock()
	for d, t := range s.used {
		if rec := ix.Images[d]; rec != nil && t.After(rec.Used) {
			rec.Used = t
		}
	}
	s.mu.Unlock()
	data, err := json.MarshalIndent(ix, "", "\t")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(s.dir, indexTempPrefix+"*")
	if err != nil {
		return err
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), s.indexPath)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", s.indexPath, err)
	}
	fi, err := os.Stat(s.indexPath)
	s.mu.Lock()
	if err == nil {
		s.cached = &cachedIndex{ix: ix, fi: fi}
	} else {
		s.cached = nil
	}
	for d, rec := range ix.Images {
		s.persisted[d] = rec.Used
	}
	s.mu.Unlock()
	return nil
}

// indexTempPrefix names index.json's temporary files in Dir.
const indexTempPrefix = "index.json.tmp-"

// lockIndex takes the lock that guards index.json and every change of
// roots/, across processes; the caller calls the returned function to
// release it. Critical sections are short (no network, no unpacking).
func (s *Store) lockIndex() (unlock func(), err error) {
	f, err := flock(filepath.Join(s.dir, "index.lock"), lockEX)
	if err != nil {
		return nil, fmt.Errorf("lock image index: %w", err)
	}
	return func() { f.Close() }, nil
}

// lockTmp takes tmp.lock shared, as every pull and removal does while it
// has something in tmp/, so that Open empties tmp/ only when nobody does.
func (s *Store) lockTmp() (unlock func(), err error) {
	f, err := flock(filepath.Join(s.dir, "tmp.lock"), lockSH)
	if err != nil {
		return nil, fmt.Errorf("lock image store's tmp: %w", err)
	}
	return func() { f.Close() }, nil
}
