package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestWhiteouts applies a layer of whiteouts over a lower layer, with the
// opaque marker before and after the layer's own entry in the directory.
func TestWhiteouts(t *testing.T) {
	reg := newRegistry(t)
	lower := tarOf(t,
		entry{name: "a/", typ: tar.TypeDir},
		entry{name: "a/x", body: "x"},
		entry{name: "a/y", body: "y"},
		entry{name: "b/", typ: tar.TypeDir},
		entry{name: "b/z", body: "z"},
		entry{name: "b/sub/", typ: tar.TypeDir},
		entry{name: "b/sub/deep", body: "deep"},
		entry{name: "c", body: "c"},
	)
	for _, tc := range []struct {
		name  string
		upper []entry
	}{
		{"marker first", []entry{
			{name: "a/.wh.x"},
			{name: "b/", typ: tar.TypeDir},
			{name: "b/.wh..wh..opq"},
			{name: "b/new", body: "new"},
			{name: ".wh.c"},
		}},
		{"marker last", []entry{
			{name: "b/", typ: tar.TypeDir},
			{name: "b/new", body: "new"},
			{name: "./b/.wh..wh..opq"},
			{name: "a/.wh.x"},
			{name: "/.wh.c"},
			{name: "a/.wh..wh.plnk"}, // AUFS bookkeeping, ignored
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := "test/wh-" + strings.ReplaceAll(tc.name, " ", "-") + ":v1"
			reg.push(t, repo, v1.Config{}, gzLayer(t, lower), gzLayer(t, tarOf(t, tc.upper...)))
			s := openStore(t, Config{})
			img, err := s.Pull(t.Context(), reg.ref(repo), nil)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{
				"a":     "d 0755",
				"a/y":   "f 0644 y",
				"b":     "d 0755",
				"b/new": "f 0644 new",
			}
			if got := tree(t, img.Root); !maps.Equal(got, want) {
				t.Errorf("root:\n got %q\nwant %q", got, want)
			}
		})
	}
}

// hostPasswd describes the host's /etc/passwd, to prove it untouched.
func hostPasswd(t *testing.T) (os.FileInfo, [32]byte) {
	t.Helper()
	fi, err := os.Stat("/etc/passwd")
	if err != nil {
		t.Skip("no /etc/passwd on this host")
	}
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	return fi, sha256.Sum256(b)
}

// TestHostileLayers pulls layers built to escape the root, plant devices,
// keep privileges or exhaust the store. Each is either refused (the pull
// fails naming the entry, the store is as before, nothing appeared outside
// it) or made harmless inside the root, as each case asserts.
func TestHostileLayers(t *testing.T) {
	passwdInfo, passwdSum := hostPasswd(t)
	reg := newRegistry(t)
	for i, tc := range []struct {
		name     string
		layers   [][]entry
		maxImage int64
		// refused: the error wraps ErrBadImage and names this; empty:
		// the pull succeeds and check inspects the root.
		refused string
		other   bool // refused, but not ErrBadImage (not the image's own fault)
		check   func(t *testing.T, root string)
	}{
		{name: "dotdot", layers: [][]entry{{{name: "../escape", body: "x"}}}, refused: `"../escape"`},
		{name: "absolute dotdot", layers: [][]entry{{{name: "/abs/../../escape", body: "x"}}}, refused: `"/abs/../../escape"`},
		{name: "inner dotdot", layers: [][]entry{{{name: "a/../../escape", body: "x"}}}, refused: `"a/../../escape"`},
		{name: "dotdot directory", layers: [][]entry{{{name: "../escape/", typ: tar.TypeDir}}}, refused: `"../escape/"`},
		{name: "hard link dotdot", layers: [][]entry{{
			{name: "hl", typ: tar.TypeLink, link: "../../etc/passwd"},
		}}, refused: `"hl"`},
		{name: "hard link to a host file", layers: [][]entry{{
			{name: "hl", typ: tar.TypeLink, link: "/etc/passwd"},
		}}, refused: "not in the image"},
		{name: "hard link absolute resolves inside", layers: [][]entry{{
			{name: "etc/passwd", body: "image's own"},
			{name: "hl", typ: tar.TypeLink, link: "/etc/passwd"},
		}}, check: func(t *testing.T, root string) {
			hl, err := os.Stat(filepath.Join(root, "hl"))
			if err != nil {
				t.Fatal(err)
			}
			own, _ := os.Stat(filepath.Join(root, "etc/passwd"))
			if !os.SameFile(hl, own) || os.SameFile(hl, passwdInfo) {
				t.Error("hard link not to the image's own etc/passwd")
			}
		}},
		{name: "hard link to a symlink", layers: [][]entry{{
			{name: "s", typ: tar.TypeSymlink, link: "/etc/passwd"},
			{name: "hl", typ: tar.TypeLink, link: "s"},
		}}, refused: "not a regular file"},
		{name: "hard link to a directory", layers: [][]entry{{
			{name: "d/", typ: tar.TypeDir},
			{name: "hl", typ: tar.TypeLink, link: "d"},
		}}, refused: "not a regular file"},
		{name: "hard link through an absolute symlink", layers: [][]entry{{
			{name: "l", typ: tar.TypeSymlink, link: "/etc"},
			{name: "hl", typ: tar.TypeLink, link: "l/passwd"},
		}}, refused: `"hl"`},
		{name: "symlink to / then write through it", layers: [][]entry{
			{{name: "evil", typ: tar.TypeSymlink, link: "/"}},
			{{name: "evil/etc/owned", body: "owned"}},
		}, refused: `"evil/etc/owned"`},
		{name: "symlink to /etc then write through it", layers: [][]entry{{
			{name: "link", typ: tar.TypeSymlink, link: "/etc"},
			{name: "link/passwd", body: "root::0:0"},
		}}, refused: `"link/passwd"`},
		{name: "symlink to /etc then mkdir through it", layers: [][]entry{{
			{name: "link", typ: tar.TypeSymlink, link: "/etc"},
			{name: "link/owned.d/", typ: tar.TypeDir},
		}}, refused: `"link/owned.d/"`},
		{name: "relative symlink climbing out", layers: [][]entry{{
			{name: "up", typ: tar.TypeSymlink, link: "../../../../../../../.."},
			{name: "up/tmp/owned", body: "owned"},
		}}, refused: `"up/tmp/owned"`},
		{name: "whiteout through a symlink to /", layers: [][]entry{
			{{name: "evil", typ: tar.TypeSymlink, link: "/"}},
			{{name: "evil/etc/.wh.passwd"}},
		}, refused: `"evil/etc/.wh.passwd"`},
		{name: "opaque whiteout on a symlink to /etc", layers: [][]entry{
			{{name: "evil", typ: tar.TypeSymlink, link: "/etc"}},
			{{name: "evil/.wh..wh..opq"}},
		}, check: func(t *testing.T, root string) {
			// Not a directory of the image: nothing to hide.
			if got := tree(t, root); !maps.Equal(got, map[string]string{"evil": "l /etc"}) {
				t.Errorf("root %q", got)
			}
			if _, err := os.Stat("/etc/passwd"); err != nil {
				t.Error(err)
			}
		}},
		{name: "whiteout of ..", layers: [][]entry{{{name: "a/.wh..."}}}, refused: "no entry"},
		{name: "symlink inside the root is followed inside", layers: [][]entry{{
			{name: "d/", typ: tar.TypeDir},
			{name: "l", typ: tar.TypeSymlink, link: "d"},
			{name: "l/f", body: "in d"},
		}}, check: func(t *testing.T, root string) {
			if b, err := os.ReadFile(filepath.Join(root, "d/f")); err != nil || string(b) != "in d" {
				t.Errorf("d/f: %q, %v", b, err)
			}
		}},
		{name: "file replaces a symlink, never written through", layers: [][]entry{
			{{name: "etc/", typ: tar.TypeDir}, {name: "etc/passwd", body: "mine"}, {name: "p", typ: tar.TypeSymlink, link: "etc/passwd"}},
			{{name: "p", body: "new"}},
		}, check: func(t *testing.T, root string) {
			got := tree(t, root)
			if got["p"] != "f 0644 new" || got["etc/passwd"] != "f 0644 mine" {
				t.Errorf("root %q", got)
			}
		}},
		{name: "devices and FIFOs", layers: [][]entry{{
			{name: "dev/", typ: tar.TypeDir},
			{name: "dev/sda", typ: tar.TypeBlock, major: 8},
			{name: "dev/mem", typ: tar.TypeChar, major: 1},
			{name: "fifo", typ: tar.TypeFifo},
			{name: "ok", body: "ok"},
		}}, check: func(t *testing.T, root string) {
			want := map[string]string{"dev": "d 0755", "ok": "f 0644 ok"}
			if got := tree(t, root); !maps.Equal(got, want) {
				t.Errorf("root %q, want %q", got, want)
			}
		}},
		{name: "setuid and setgid", layers: [][]entry{{
			{name: "su", mode: 0o4755, body: "x"},
			{name: "sg", mode: 0o2711, body: "x"},
			{name: "sgdir/", typ: tar.TypeDir, mode: 0o2775},
		}}, check: func(t *testing.T, root string) {
			for p, want := range map[string]os.FileMode{"su": 0o755, "sg": 0o711, "sgdir": os.ModeDir | 0o755} {
				fi, err := os.Lstat(filepath.Join(root, p))
				if err != nil || fi.Mode() != want {
					t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode(), err, want)
				}
			}
		}},
		{name: "layer larger than MaxImage", maxImage: 64 << 10, layers: [][]entry{{
			{name: "small", body: "x"},
			{name: "big", body: strings.Repeat("b", 100<<10)},
		}}, refused: `"big"`},
		{name: "layers together larger than MaxImage", maxImage: 64 << 10, layers: [][]entry{
			{{name: "one", body: strings.Repeat("b", 40<<10)}},
			{{name: "two", body: strings.Repeat("b", 40<<10)}},
		}, refused: `"two"`},
		{name: "entry claims more than the layer holds", maxImage: 4 << 20, layers: [][]entry{{
			{name: "ok", body: "fine"},
			{name: "liar", body: "only this", claim: 1 << 20},
		}}, refused: `"liar"`, other: true},
		{name: "the root as a file", layers: [][]entry{{{name: ".", body: "x"}}}, refused: `"."`},
		{name: "parent is a file", layers: [][]entry{{
			{name: "f", body: "x"},
			{name: "f/g", body: "y"},
		}}, refused: `"f/g"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var layers []v1.Layer
			for _, es := range tc.layers {
				layers = append(layers, gzLayer(t, tarOf(t, es...)))
			}
			repo := fmt.Sprintf("test/hostile-%d:v1", i)
			reg.push(t, repo, v1.Config{}, layers...)
			parent := t.TempDir()
			s := openStore(t, Config{Dir: filepath.Join(parent, "store"), MaxImage: tc.maxImage})
			before := listing(t, parent)

			img, err := s.Pull(t.Context(), reg.ref(repo), nil)
			for _, p := range []string{"/escape", "/etc/owned", "/tmp/owned", "/etc/owned.d", "/tmp/escape"} {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("%s exists on the host", p)
				}
			}
			if fi, sum := hostPasswd(t); !os.SameFile(fi, passwdInfo) || sum != passwdSum {
				t.Error("the host's /etc/passwd changed")
			}
			if tc.refused == "" {
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, img.Root)
				return
			}
			if err == nil {
				t.Fatalf("pull succeeded; root %q", tree(t, img.Root))
			}
			t.Log(err)
			if errors.Is(err, ErrBadImage) == tc.other {
				t.Errorf("errors.Is(err, ErrBadImage) = %v", !tc.other)
			}
			if !strings.Contains(err.Error(), tc.refused) {
				t.Errorf("error does not name %s", tc.refused)
			}
			if after := listing(t, parent); !slices.Equal(before, after) {
				t.Errorf("refused pull changed the store:\nbefore %q\nafter  %q", before, after)
			}
		})
	}
}

// TestBadBlobs serves layer blobs that are not what the manifest says:
// the pull fails and leaves nothing, though the bytes were a valid tar
// that the unpacker had started to apply.
func TestBadBlobs(t *testing.T) {
	reg := newRegistry(t)
	blob := tarOf(t, entry{name: "bin/", typ: tar.TypeDir}, entry{name: "bin/sh", body: strings.Repeat("honest ", 1000)})
	layer := rawLayer(blob)
	ld, err := layer.Digest()
	if err != nil {
		t.Fatal(err)
	}
	reg.push(t, "test/blob:v1", v1.Config{}, layer)
	tampered := bytes.Replace(blob, []byte("honest"), []byte("hacked"), 1)
	if len(tampered) != len(blob) || bytes.Equal(tampered, blob) {
		t.Fatal("bad tampering")
	}
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"tampered", tampered},
		{"cut short", blob[:len(blob)/2]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg.setHook(func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+ld.String()) {
					return false
				}
				// The length the manifest promised, whatever follows.
				w.Header().Set("Content-Length", fmt.Sprint(len(blob)))
				w.WriteHeader(http.StatusOK)
				w.Write(tc.body)
				return true
			})
			defer reg.setHook(nil)
			s := openStore(t, Config{})
			before := listing(t, s.dir)
			_, err := s.Pull(t.Context(), reg.ref("test/blob:v1"), nil)
			if err == nil {
				t.Fatal("pull succeeded")
			}
			t.Log(err)
			if errors.Is(err, ErrBadImage) {
				t.Error("a bad blob is not the image's fault")
			}
			if after := listing(t, s.dir); !slices.Equal(before, after) {
				t.Errorf("store changed:\nbefore %q\nafter  %q", before, after)
			}
		})
	}
	// And untouched, it pulls.
	s := openStore(t, Config{})
	if _, err := s.Pull(t.Context(), reg.ref("test/blob:v1"), nil); err != nil {
		t.Fatal(err)
	}
}

// TestRefusedManifests: what is refused before any layer is fetched.
func TestRefusedManifests(t *testing.T) {
	big := func(n int) *v1.Manifest {
		m := &v1.Manifest{}
		for range n {
			m.Layers = append(m.Layers, v1.Descriptor{MediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", Size: 10})
		}
		return m
	}
	for _, tc := range []struct {
		name string
		m    *v1.Manifest
	}{
		{"too many layers", big(maxLayers + 1)},
		{"foreign layer", &v1.Manifest{Layers: []v1.Descriptor{{Size: 1, URLs: []string{"https://example.com/blob"}}}}},
		{"foreign media type", &v1.Manifest{Layers: []v1.Descriptor{{Size: 1, MediaType: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"}}}},
		{"artifact", &v1.Manifest{Config: v1.Descriptor{MediaType: "application/vnd.cncf.helm.config.v1+json"}}},
		{"huge config", &v1.Manifest{Config: v1.Descriptor{Size: maxConfigSize + 1}}},
		{"negative size", &v1.Manifest{Layers: []v1.Descriptor{{Size: -1}}}},
		{"layers declare too much", &v1.Manifest{Layers: []v1.Descriptor{{Size: streamBound(1 << 20)}, {Size: 1}}}},
	} {
		if err := checkManifest(tc.m, 1<<20); !errors.Is(err, ErrBadImage) {
			t.Errorf("%s: %v, want ErrBadImage", tc.name, err)
		}
	}
	if err := checkManifest(big(maxLayers), 1<<20); err != nil {
		t.Errorf("%d layers: %v", maxLayers, err)
	}
}

func TestCleanName(t *testing.T) {
	deep := strings.Repeat("d/", maxDepth) + "f"
	for _, tc := range []struct {
		in, want string // want "" means refused
	}{
		{"a/b", "a/b"},
		{"./a/b/", "a/b"},
		{"/a//b/./c", "a/b/c"},
		{"./", "."},
		{"/", "."},
		{".", "."},
		{"..", ""},
		{"a/..", ""},
		{"a/../b", ""},
		{"../a", ""},
		{"", ""},
		{"a\x00b", ""},
		{strings.Repeat("a", maxPathLen+1), ""},
		{deep, ""},
		{strings.Repeat("d/", maxDepth-1) + "f", strings.Repeat("d/", maxDepth-1) + "f"},
		{"..a/b..", "..a/b.."},
		{".wh.x", ".wh.x"},
	} {
		got, err := cleanName(tc.in)
		if tc.want == "" {
			if !errors.Is(err, ErrBadImage) {
				t.Errorf("cleanName(%q) = %q, %v; want refused", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// FuzzUnpackLayer feeds arbitrary bytes as a layer's tar stream to the
// unpacker: whatever it does inside its root, nothing may appear or change
// beside it.
func FuzzUnpackLayer(f *testing.F) {
	for _, es := range [][]entry{
		{{name: "a/", typ: tar.TypeDir}, {name: "a/f", body: "x"}, {name: "a/l", typ: tar.TypeSymlink, link: "f"}},
		{{name: "../escape", body: "x"}},
		{{name: "evil", typ: tar.TypeSymlink, link: "/"}, {name: "evil/tmp/owned", body: "x"}},
		{{name: "up", typ: tar.TypeSymlink, link: "../outside"}, {name: "up/file", body: "changed"}},
		{{name: "up", typ: tar.TypeSymlink, link: "../outside"}, {name: "up/.wh.file"}},
		{{name: "up", typ: tar.TypeSymlink, link: "../outside"}, {name: "up/.wh..wh..opq"}},
		{{name: "up/", typ: tar.TypeDir}, {name: "up/x", typ: tar.TypeSymlink, link: "../../outside"}, {name: "up/x/file", body: "changed"}},
		{{name: "hl", typ: tar.TypeLink, link: "../outside/file"}},
		{{name: "f", body: "x"}, {name: "hl", typ: tar.TypeLink, link: "f"}, {name: ".wh.f"}},
		{{name: "d/", typ: tar.TypeDir}, {name: "d/.wh..wh..opq"}, {name: "d/x", body: "y"}},
		{{name: "dev", typ: tar.TypeChar, major: 1}},
	} {
		f.Add(tarOf(f, es...))
	}
	// One directory for all runs, with a neighbour made once and a fresh
	// root per run: runs must be cheap for the fuzzer to get anywhere.
	base := f.TempDir()
	outside := filepath.Join(base, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		f.Fatal(err)
	}
	sentinel := filepath.Join(outside, "file")
	if err := os.WriteFile(sentinel, []byte("sentinel"), 0o644); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rootDir, err := os.MkdirTemp(base, "root-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(rootDir)
		root, err := os.OpenRoot(rootDir)
		if err != nil {
			t.Fatal(err)
		}
		u := newUnpacker(root, 1<<20, slog.New(slog.DiscardHandler))
		_ = u.apply(t.Context(), 0, bytes.NewReader(data))
		root.Close()

		for dir, want := range map[string][]string{
			base:    {"outside", filepath.Base(rootDir)},
			outside: {"file"},
		} {
			names, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, n := range names {
				got = append(got, n.Name())
			}
			if slices.Sort(want); !slices.Equal(got, want) {
				t.Fatalf("%s holds %q, want %q", dir, got, want)
			}
		}
		fi, err := os.Lstat(sentinel)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
			t.Fatalf("sentinel: %v, %v", fi, err)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink != 1 {
			t.Fatalf("sentinel has %d links", st.Nlink)
		}
		if b, _ := os.ReadFile(sentinel); string(b) != "sentinel" {
			t.Fatalf("sentinel holds %q", b)
		}
		if fi, err := os.Lstat(rootDir); err != nil || !fi.IsDir() {
			t.Fatalf("root: %v, %v", fi, err)
		}
	})
}
