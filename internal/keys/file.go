package keys

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// FileName is the keys file in a data directory.
const FileName = "keys.json"

// maxFileBytes bounds the keys file read back (about 20,000 keys).
const maxFileBytes = 8 << 20

// FileStore keeps keys in one JSON file (mode 0600), replaced whole by a
// rename under an flock, so that a CLI and a server, or two CLIs, never
// see half a file or lose each other's changes.
type FileStore struct {
	Path string
}

var _ Store = (*FileStore)(nil)

// NewFileStore keeps keys in dir/keys.json.
func NewFileStore(dir string) *FileStore { return &FileStore{Path: filepath.Join(dir, FileName)} }

// List reads the file; no file is no keys.
func (f *FileStore) List() ([]Key, error) {
	file, err := os.Open(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read keys: %w", err)
	}
	defer file.Close()
	var ks []Key
	dec := json.NewDecoder(&limited{r: file, n: maxFileBytes})
	if err := dec.Decode(&ks); err != nil {
		return nil, fmt.Errorf("read keys %s: %w", f.Path, err)
	}
	return ks, nil
}

// Add stores k.
func (f *FileStore) Add(k Key) error {
	return f.change(func(ks []Key) ([]Key, error) {
		for _, o := range ks {
			if o.Name == k.Name {
				return nil, ErrExists
			}
		}
		return append(ks, k), nil
	})
}

// Remove deletes the key named name.
func (f *FileStore) Remove(name string) error {
	return f.change(func(ks []Key) ([]Key, error) {
		for i, o := range ks {
			if o.Name == name {
				return append(ks[:i], ks[i+1:]...), nil
			}
		}
		return nil, ErrNotFound
	})
}

// change reads, changes and replaces the file under an exclusive flock of
// a lock file beside it.
func (f *FileStore) change(fn func([]Key) ([]Key, error)) error {
	dir := filepath.Dir(f.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keys directory: %w", err)
	}
	lock, err := os.OpenFile(f.Path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("lock keys: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock keys: %w", err)
	}
	ks, err := f.List()
	if err != nil {
		return err
	}
	if ks, err = fn(ks); err != nil {
		return err
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i].Name < ks[j].Name })
	if ks == nil {
		ks = []Key{}
	}
	b, err := json.MarshalIndent(ks, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, FileName+".*")
	if err != nil {
		return fmt.Errorf("write keys: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, there is nothing to remove
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write keys: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write keys: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write keys: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.Path); err != nil {
		return fmt.Errorf("write keys: %w", err)
	}
	return nil
}

// limited reads at most n bytes, then fails (a file that large is not a
// keys file).
type limited struct {
	r interface{ Read([]byte) (int, error) }
	n int64
}

func (l *limited) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("keys file too large")
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}
