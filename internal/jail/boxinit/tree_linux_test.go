package boxinit

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// TestTreeCopy: a small directory is copied whole — files with their
// content and modes (setuid bits dropped), symlinks as links, directories —
// and anything else, or anything larger, is left to an overlay.
func TestTreeCopy(t *testing.T) {
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(src, "a.conf"), []byte("include /x\n"), 0o644))
	must(os.Mkdir(filepath.Join(src, "sub"), 0o750))
	must(os.WriteFile(filepath.Join(src, "sub", "run"), []byte("#!/bin/sh\n"), 0o755))
	must(os.Chmod(filepath.Join(src, "sub", "run"), 0o4755))
	must(os.Symlink("../../etc/passwd", filepath.Join(src, "link")))
	if !SmallTree(src) {
		t.Fatalf("%s is not small", src)
	}
	tree, err := readTree(src)
	must(err)
	dst := filepath.Join(t.TempDir(), "copy")
	must(placeTree(dst, tree))
	for name, want := range map[string]string{"a.conf": "include /x\n", "sub/run": "#!/bin/sh\n"} {
		got, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || !bytes.Equal(got, []byte(want)) {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	for name, want := range map[string]os.FileMode{"a.conf": 0o644, "sub/run": 0o755, "sub": os.ModeDir | 0o750} {
		st, err := os.Lstat(filepath.Join(dst, name))
		if err != nil || st.Mode() != want {
			t.Errorf("%s: mode %v, want %v (%v)", name, st.Mode(), want, err)
		}
	}
	if l, err := os.Readlink(filepath.Join(dst, "link")); err != nil || l != "../../etc/passwd" {
		t.Errorf("link: %q, %v", l, err)
	}

	// Not small: a FIFO, too many entries, too many bytes, too deep.
	fifo := t.TempDir()
	must(syscall.Mkfifo(filepath.Join(fifo, "p"), 0o644))
	many := t.TempDir()
	for i := range maxTreeEntries + 1 {
		must(os.WriteFile(filepath.Join(many, strconv.Itoa(i)), nil, 0o644))
	}
	big := t.TempDir()
	must(os.WriteFile(filepath.Join(big, "f"), make([]byte, maxTreeBytes+1), 0o644))
	deep := t.TempDir()
	must(os.MkdirAll(filepath.Join(deep, "a", "b", "c", "d"), 0o755))
	for what, dir := range map[string]string{"a FIFO": fifo, "too many entries": many, "too many bytes": big, "too deep": deep} {
		if SmallTree(dir) {
			t.Errorf("%s: copied", what)
		}
	}
	// A symlink to a directory is not followed.
	ln := filepath.Join(t.TempDir(), "ln")
	must(os.Symlink(src, ln))
	if SmallTree(ln) {
		t.Errorf("a symlink to a small directory: copied")
	}
}
