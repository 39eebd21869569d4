package image

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// pushSized pushes images test/<name>:v1 of one 10 KiB file each.
func pushSized(t *testing.T, reg *testRegistry, names ...string) {
	t.Helper()
	for _, n := range names {
		body := strings.Repeat(n, 10<<10)
		reg.push(t, "test/"+n+":v1", v1.Config{}, gzLayer(t, tarOf(t, entry{name: "data", body: body})))
	}
}

// present lists which of names the store holds, checking that each
// image's root exists exactly when the store has it.
func present(t *testing.T, s *Store, reg *testRegistry, names ...string) []string {
	t.Helper()
	var got []string
	for _, n := range names {
		img, ok := s.Lookup(reg.ref("test/" + n + ":v1"))
		if ok {
			got = append(got, n)
			if _, err := os.Stat(filepath.Join(img.Root, "data")); err != nil {
				t.Errorf("%s: in the store but %v", n, err)
			}
		}
	}
	return got
}

func mustPull(t *testing.T, s *Store, ref string) *Image {
	t.Helper()
	img, err := s.Pull(t.Context(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestEvictionAndPrune: a store bounded to two images and a half evicts
// the least recently used image nothing uses, never the one just pulled;
// Prune keeps what keep names and what is in use.
func TestEvictionAndPrune(t *testing.T) {
	reg := newRegistry(t)
	all := []string{"a", "b", "c", "d", "e"}
	pushSized(t, reg, all...)
	var logs logBuffer
	s := openStore(t, Config{MaxBytes: 25 << 10, Logger: logs.logger()})
	ref := func(n string) string { return reg.ref("test/" + n + ":v1") }

	a := mustPull(t, s, ref("a"))
	mustPull(t, s, ref("b"))
	s.Use(a)() // a is now more recently used than b
	mustPull(t, s, ref("c"))
	if got := present(t, s, reg, all...); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("after c: %q, want a and c (b least recently used)", got)
	}

	releaseA := s.Use(a)
	mustPull(t, s, ref("d"))
	if got := present(t, s, reg, all...); !slices.Equal(got, []string{"a", "d"}) {
		t.Errorf("after d: %q, want a (in use) and d", got)
	}

	d, _ := s.Lookup(ref("d"))
	releaseD := s.Use(d)
	mustPull(t, s, ref("e"))
	if got := present(t, s, reg, all...); !slices.Equal(got, []string{"a", "d", "e"}) {
		t.Errorf("after e: %q, want everything in use kept", got)
	}
	if !strings.Contains(logs.String(), "exceeds its bound") {
		t.Errorf("no warning for a store over its bound; log:\n%s", logs.String())
	}

	// In use: Prune keeps them too.
	removed, err := s.Prune([]string{ref("e")})
	if err != nil || len(removed) != 0 {
		t.Errorf("Prune with everything in use or kept = %+v, %v", removed, err)
	}
	releaseA()
	releaseA() // idempotent
	releaseD()
	removed, err = s.Prune([]string{ref("e")})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, im := range removed {
		names = append(names, im.Refs...)
	}
	if want := []string{ref("a"), ref("d")}; !slices.Equal(names, want) {
		t.Errorf("pruned %q, want %q", names, want)
	}
	if got := present(t, s, reg, all...); !slices.Equal(got, []string{"e"}) {
		t.Errorf("after prune: %q, want e", got)
	}

	// Kept by digest, then nothing kept.
	e, _ := s.Lookup(ref("e"))
	if removed, err := s.Prune([]string{reg.ref("test/any@" + e.Digest)}); err != nil || len(removed) != 0 {
		t.Errorf("Prune keeping e's digest = %+v, %v", removed, err)
	}
	if removed, err := s.Prune(nil); err != nil || len(removed) != 1 {
		t.Errorf("Prune(nil) = %+v, %v", removed, err)
	}
	if _, err := s.Prune([]string{"Not A Ref!"}); err == nil {
		t.Error("Prune accepted a keep that is not a reference")
	}
	for _, d := range []string{s.rootsDir, s.tmpDir, s.useDir} {
		if e, _ := os.ReadDir(d); len(e) != 0 {
			t.Errorf("%s holds %d entries in an empty store", d, len(e))
		}
	}
}

// TestEvictionSparesTheNewImage: an image bigger than MaxBytes on its own
// stays, with a warning.
func TestEvictionSparesTheNewImage(t *testing.T) {
	reg := newRegistry(t)
	pushSized(t, reg, "a", "b")
	var logs logBuffer
	s := openStore(t, Config{MaxBytes: 1 << 10, Logger: logs.logger()})
	mustPull(t, s, reg.ref("test/a:v1"))
	mustPull(t, s, reg.ref("test/b:v1"))
	if got := present(t, s, reg, "a", "b"); !slices.Equal(got, []string{"b"}) {
		t.Errorf("%q, want b only", got)
	}
	if !strings.Contains(logs.String(), "exceeds its bound") {
		t.Error("no warning")
	}
}

// TestUseAcrossStores: two Stores on one directory stand for the server
// and a CLI: an image one uses, the other neither prunes nor evicts, and
// what one pulls or prunes the other sees.
func TestUseAcrossStores(t *testing.T) {
	reg := newRegistry(t)
	pushSized(t, reg, "a", "b")
	dir := filepath.Join(t.TempDir(), "store")
	server := openStore(t, Config{Dir: dir})
	cli := openStore(t, Config{Dir: dir, MaxBytes: 15 << 10})

	a := mustPull(t, server, reg.ref("test/a:v1"))
	release := server.Use(a)
	mustPull(t, cli, reg.ref("test/b:v1")) // over MaxBytes, but a is in use
	if got := present(t, cli, reg, "a", "b"); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("cli sees %q", got)
	}
	if removed, err := cli.Prune(nil); err != nil || len(removed) != 1 || removed[0].Refs[0] != reg.ref("test/b:v1") {
		t.Errorf("cli Prune = %+v, %v; want b only", removed, err)
	}
	if got := present(t, server, reg, "a", "b"); !slices.Equal(got, []string{"a"}) {
		t.Errorf("server sees %q after the cli's prune", got)
	}
	release()
	if removed, err := cli.Prune(nil); err != nil || len(removed) != 1 {
		t.Errorf("cli Prune after release = %+v, %v", removed, err)
	}
	if _, ok := server.Lookup(reg.ref("test/a:v1")); ok {
		t.Error("server still sees a")
	}
}

// TestOpenCleansLeftovers: Open removes what interrupted pulls and
// crashes left, unless another process is pulling.
func TestOpenCleansLeftovers(t *testing.T) {
	reg := newRegistry(t)
	pushSized(t, reg, "a")
	dir := filepath.Join(t.TempDir(), "store")
	s := openStore(t, Config{Dir: dir})
	img := mustPull(t, s, reg.ref("test/a:v1"))

	orphan := filepath.Join(dir, "roots", "sha256-"+strings.Repeat("0", 64))
	leftovers := []string{
		filepath.Join(dir, "tmp", "pull-123", "etc", "passwd"),
		filepath.Join(orphan, "bin", "sh"),
		filepath.Join(dir, "index.json.tmp-42"),
	}
	for _, p := range leftovers {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A symlink out of the store in a leftover must not lead removal out.
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(victim), filepath.Join(dir, "tmp", "pull-123", "out")); err != nil {
		t.Fatal(err)
	}

	// While another process pulls, nothing in tmp/ is touched.
	busy, err := flock(filepath.Join(dir, "tmp.lock"), lockSH)
	if err != nil {
		t.Fatal(err)
	}
	openStore(t, Config{Dir: dir})
	if _, err := os.Stat(leftovers[0]); err != nil {
		t.Errorf("leftover of a running pull removed: %v", err)
	}
	busy.Close()

	openStore(t, Config{Dir: dir})
	for _, p := range append(leftovers, orphan, filepath.Join(dir, "tmp", "pull-123")) {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s left", p)
		}
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "keep" {
		t.Errorf("file outside the store: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(img.Root, "data")); err != nil {
		t.Errorf("committed image damaged: %v", err)
	}
	if _, ok := s.Lookup(reg.ref("test/a:v1")); !ok {
		t.Error("committed image gone")
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Dir: t.TempDir(), MaxBytes: -1},
		{Dir: t.TempDir(), MaxImage: -1},
		{Dir: t.TempDir(), Insecure: []string{"a b"}},
		{Dir: filepath.Join(t.TempDir(), "no", "parent")},
	} {
		if _, err := Open(cfg); err == nil {
			t.Errorf("Open(%+v) succeeded", cfg)
		}
	}
}
