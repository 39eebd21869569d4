package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestPullPlainImage pulls a two-layer image (gzip, then zstd) and checks
// the root entry by entry, the config, lookups by tag and digest, and that
// pulling the same digest under another tag downloads nothing.
func TestPullPlainImage(t *testing.T) {
	reg := newRegistry(t)
	lower := tarOf(t,
		entry{name: "etc/", typ: tar.TypeDir},
		entry{name: "etc/passwd", body: "root:x:0:0"},
		entry{name: "./bin/", typ: tar.TypeDir},
		entry{name: "bin/tool", mode: 0o4755, body: "v1"}, // setuid dropped
		entry{name: "bin/tool2", typ: tar.TypeLink, link: "bin/tool"},
		entry{name: "usr/lib/libc.so", body: "elf"}, // parents implied
		entry{name: "lib", typ: tar.TypeSymlink, link: "usr/lib"},
		entry{name: "abs", typ: tar.TypeSymlink, link: "/etc/passwd"},
		entry{name: "private", mode: 0o600, body: "secret"},
		entry{name: "/shared", mode: 0o666, body: "w"}, // group/other write dropped
		entry{name: "home/", typ: tar.TypeDir, mode: 0o500},
		entry{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		entry{name: "srv/", typ: tar.TypeDir, mode: 0o2750},
	)
	upper := tarOf(t,
		entry{name: "etc/passwd", mode: 0o640, body: "root:x:0:0\nbox:x:1000"},
		entry{name: "etc/motd", body: "hi"},
		entry{name: "bin/tool", mode: 0o755, body: "v2"}, // replaced, the hard link keeps v1
	)
	cfg := v1.Config{Env: []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}, WorkingDir: "/work"}
	digest := reg.push(t, "test/plain:v1", cfg, gzLayer(t, lower), zstdLayer(t, upper))

	s := openStore(t, Config{})
	var last [2]int64
	var calls int
	img, err := s.Pull(t.Context(), reg.ref("test/plain:v1"), func(done, total int64) {
		calls++
		last = [2]int64{done, total}
	})
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != digest {
		t.Errorf("digest %s, want %s", img.Digest, digest)
	}
	if want := []string{reg.ref("test/plain:v1")}; !slices.Equal(img.Refs, want) {
		t.Errorf("refs %q, want %q", img.Refs, want)
	}
	if !slices.Equal(img.Env, cfg.Env) || img.WorkingDir != cfg.WorkingDir {
		t.Errorf("env %q workdir %q, want %q %q", img.Env, img.WorkingDir, cfg.Env, cfg.WorkingDir)
	}
	if calls == 0 || last[0] != last[1] || last[1] == 0 {
		t.Errorf("progress: %d calls, last %v", calls, last)
	}
	if !strings.HasPrefix(img.Root, s.rootsDir+string(filepath.Separator)) {
		t.Errorf("root %s not under %s", img.Root, s.rootsDir)
	}

	want := map[string]string{
		"etc":             "d 0755",
		"etc/passwd":      "f 0640 root:x:0:0\nbox:x:1000",
		"etc/motd":        "f 0644 hi",
		"bin":             "d 0755",
		"bin/tool":        "f 0755 v2",
		"bin/tool2":       "f 0755 v1",
		"usr":             "d 0755",
		"usr/lib":         "d 0755",
		"usr/lib/libc.so": "f 0644 elf",
		"lib":             "l usr/lib",
		"abs":             "l /etc/passwd",
		"private":         "f 0600 secret",
		"shared":          "f 0644 w",
		"home":            "d 0700",
		"tmp":             "d 0755",
		"srv":             "d 0750",
	}
	if got := tree(t, img.Root); !maps.Equal(got, want) {
		t.Errorf("root:\n got %q\nwant %q", got, want)
	}
	fi, err := os.Stat(img.Root)
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("root mode: %v %v", fi, err)
	}
	for _, d := range []string{s.dir, s.rootsDir} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o711 {
			t.Errorf("%s: mode %v, err %v; want 0711", d, fi.Mode(), err)
		}
	}
	// Regular files: passwd 21, motd 2, tool 2, tool2 2, libc 3, private 6, shared 1.
	if img.Size != 37 {
		t.Errorf("size %d, want 37", img.Size)
	}

	before := reg.requests.Load()
	for _, ref := range []string{reg.ref("test/plain:v1"), reg.ref("test/plain@" + digest), reg.ref("other/name@" + digest)} {
		got, ok := s.Lookup(ref)
		if !ok || got.Digest != digest || got.Root != img.Root {
			t.Errorf("Lookup(%s) = %+v, %v", ref, got, ok)
		}
		got, err := s.Ensure(t.Context(), ref, nil)
		if err != nil || got.Digest != digest {
			t.Errorf("Ensure(%s) = %+v, %v", ref, got, err)
		}
	}
	if n := reg.requests.Load() - before; n != 0 {
		t.Errorf("lookups and ensures of a local image made %d registry requests", n)
	}
	if _, ok := s.Lookup(reg.ref("test/plain:v2")); ok {
		t.Error("Lookup of an unknown tag succeeded")
	}

	// The same image under another tag: only the ref is recorded.
	ref, _ := name.ParseReference(reg.ref("test/plain:v2"))
	src, err := remote.Image(mustRef(t, reg.ref("test/plain:v1")))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, src); err != nil {
		t.Fatal(err)
	}
	blobs := reg.blobGets.Load()
	img2, err := s.Pull(t.Context(), reg.ref("test/plain:v2"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := reg.blobGets.Load() - blobs; n != 0 {
		t.Errorf("second pull of the same digest downloaded %d blobs", n)
	}
	if img2.Root != img.Root || !img2.Pulled.Equal(img.Pulled) {
		t.Errorf("second pull: root %s pulled %v, want %s %v", img2.Root, img2.Pulled, img.Root, img.Pulled)
	}
	if want := []string{reg.ref("test/plain:v1"), reg.ref("test/plain:v2")}; !slices.Equal(img2.Refs, want) {
		t.Errorf("refs %q, want %q", img2.Refs, want)
	}
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].Digest != digest {
		t.Errorf("List = %+v, %v", list, err)
	}
	if entries, _ := os.ReadDir(s.tmpDir); len(entries) != 0 {
		t.Errorf("tmp/ holds %d entries after pulls", len(entries))
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPullIndexPicksPlatform pulls an index and gets linux/GOARCH.
func TestPullIndexPicksPlatform(t *testing.T) {
	reg := newRegistry(t)
	other := "arm64"
	if runtime.GOARCH == other {
		other = "amd64"
	}
	ours := buildImage(t, runtime.GOARCH, v1.Config{}, gzLayer(t, tarOf(t, entry{name: "arch", body: runtime.GOARCH})))
	theirs := buildImage(t, other, v1.Config{}, gzLayer(t, tarOf(t, entry{name: "arch", body: other})))
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: theirs, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: other}}},
		mutate.IndexAddendum{Add: ours, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}},
	)
	if err := remote.WriteIndex(mustRef(t, reg.ref("test/multi:latest")), idx); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, Config{})
	img, err := s.Pull(t.Context(), reg.ref("test/multi"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := digestOf(t, ours); img.Digest != want {
		t.Errorf("digest %s, want this platform's %s", img.Digest, want)
	}
	if b, err := os.ReadFile(filepath.Join(img.Root, "arch")); err != nil || string(b) != runtime.GOARCH {
		t.Errorf("arch file %q, %v", b, err)
	}
	// The index's digest names it too once pulled by it.
	idxDigest, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	byIndex := reg.ref("test/multi@" + idxDigest.String())
	if _, err := s.Pull(t.Context(), byIndex, nil); err != nil {
		t.Fatal(err)
	}
	if got, ok := s.Lookup(byIndex); !ok || got.Digest != img.Digest {
		t.Errorf("Lookup by index digest = %+v, %v", got, ok)
	}
}

// TestConcurrentEnsure has 8 goroutines Ensure one ref: one download, one
// image for all.
func TestConcurrentEnsure(t *testing.T) {
	reg := newRegistry(t)
	reg.push(t, "test/busy:v1", v1.Config{},
		gzLayer(t, tarOf(t, entry{name: "a", body: "a"})),
		gzLayer(t, tarOf(t, entry{name: "b", body: "b"})))
	// Slow blobs make the callers overlap.
	reg.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/blobs/") {
			time.Sleep(50 * time.Millisecond)
		}
		return false
	})
	s := openStore(t, Config{})
	const n = 8
	imgs := make([]*Image, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			imgs[i], errs[i] = s.Ensure(t.Context(), reg.ref("test/busy:v1"), nil)
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if imgs[i].Digest != imgs[0].Digest || imgs[i].Root != imgs[0].Root {
			t.Errorf("caller %d got %+v, caller 0 %+v", i, imgs[i], imgs[0])
		}
	}
	if got := reg.blobGets.Load(); got != 3 { // config and two layers
		t.Errorf("%d blob downloads, want 3", got)
	}

	// Two tags of one digest pulled at once: one download too.
	src, err := remote.Image(mustRef(t, reg.ref("test/busy:v1")))
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"x", "y"} {
		if err := remote.Write(mustRef(t, reg.ref("test/twin:"+tag)), src); err != nil {
			t.Fatal(err)
		}
	}
	s2 := openStore(t, Config{})
	reg.blobGets.Store(0)
	for _, tag := range []string{"x", "y"} {
		wg.Go(func() {
			if _, err := s2.Pull(t.Context(), reg.ref("test/twin:"+tag), nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := reg.blobGets.Load(); got != 3 {
		t.Errorf("two tags of one digest: %d blob downloads, want 3", got)
	}
	img, ok := s2.Lookup(reg.ref("test/twin:x"))
	if !ok || len(img.Refs) != 2 {
		t.Errorf("Lookup twin = %+v, %v; want both refs", img, ok)
	}
}

// TestCancelledPullLeavesNothing cancels a pull in the middle of a layer:
// Pull returns the context's error and the store holds nothing of it.
func TestCancelledPullLeavesNothing(t *testing.T) {
	reg := newRegistry(t)
	blob := tarOf(t, entry{name: "big", body: strings.Repeat("x", 1<<20)})
	layer := rawLayer(blob)
	reg.push(t, "test/slow:v1", v1.Config{}, layer)
	ld, err := layer.Digest()
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t, Config{})
	before := listing(t, s.dir)

	// The layer's blob stops halfway until the client goes away.
	started := make(chan struct{})
	var once sync.Once
	reg.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+ld.String()) {
			return false
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(blob)))
		w.WriteHeader(http.StatusOK)
		w.Write(blob[:len(blob)/2])
		w.(http.Flusher).Flush()
		once.Do(func() { close(started) })
		<-r.Context().Done()
		return true
	})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-started
		// Wait until the unpacker has created its temporary root.
		eventually(t, 5*time.Second, func() error {
			if e, _ := os.ReadDir(s.tmpDir); len(e) == 0 {
				return errors.New("no temporary directory yet")
			}
			return nil
		})
		cancel()
	}()
	_, err = s.Pull(ctx, reg.ref("test/slow:v1"), nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Pull = %v, want context.Canceled", err)
	}
	if after := listing(t, s.dir); !slices.Equal(before, after) {
		t.Errorf("store changed by a cancelled pull:\nbefore %q\nafter  %q", before, after)
	}
}

// TestImpatientCallerDoesNotFailOthers: of two callers sharing a pull, the
// one that gives up gets its context's error, the other the image.
func TestImpatientCallerDoesNotFailOthers(t *testing.T) {
	reg := newRegistry(t)
	reg.push(t, "test/shared:v1", v1.Config{}, gzLayer(t, tarOf(t, entry{name: "f", body: "f"})))
	release := make(chan struct{})
	arrived := make(chan struct{}, 16)
	reg.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/manifests/") {
			arrived <- struct{}{}
			<-release
		}
		return false
	})
	s := openStore(t, Config{})
	impatient, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var errImpatient, errPatient error
	var img *Image
	wg.Go(func() { _, errImpatient = s.Pull(impatient, reg.ref("test/shared:v1"), nil) })
	<-arrived // the shared call is asking the registry
	wg.Go(func() { img, errPatient = s.Pull(t.Context(), reg.ref("test/shared:v1"), nil) })
	eventually(t, 5*time.Second, func() error {
		s.flights.mu.Lock()
		defer s.flights.mu.Unlock()
		if c := s.flights.calls["ref "+reg.ref("test/shared:v1")]; c == nil || c.waiters != 2 {
			return errors.New("second caller not waiting yet")
		}
		return nil
	})
	cancel()
	eventually(t, 5*time.Second, func() error {
		s.flights.mu.Lock()
		defer s.flights.mu.Unlock()
		if c := s.flights.calls["ref "+reg.ref("test/shared:v1")]; c == nil || c.waiters != 1 {
			return errors.New("impatient caller still waiting")
		}
		return nil
	})
	close(release)
	wg.Wait()
	if !errors.Is(errImpatient, context.Canceled) {
		t.Errorf("impatient caller: %v, want context.Canceled", errImpatient)
	}
	if errPatient != nil || img == nil {
		t.Fatalf("patient caller: %v", errPatient)
	}
}

// TestPlainHTTP checks which registries may be spoken to over plain HTTP:
// loopback and listed ones only, even though go-containerregistry would
// use HTTP for RFC 1918 addresses too.
func TestPlainHTTP(t *testing.T) {
	s := openStore(t, Config{Insecure: []string{"registry.internal:5000", "Lab"}})
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"127.0.0.1:5000", true},
		{"127.0.0.2", true},
		{"localhost:5000", true},
		{"LOCALHOST", true},
		{"[::1]:5000", true},
		{"::1", true},
		{"registry.internal:5000", true},
		{"registry.internal:5001", false},
		{"registry.internal", false},
		{"lab:1234", true},
		{"lab", true},
		{"10.0.0.5:5000", false},
		{"192.168.1.2", false},
		{"172.16.0.1:443", false},
		{"example.com", false},
		{"localhost.example.com", false},
		{"index.docker.io", false},
	} {
		if got := s.plainHTTP(tc.host); got != tc.want {
			t.Errorf("plainHTTP(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}

	for _, tc := range []struct {
		ref, scheme string
	}{
		{"example.com/x", "https"},
		{"alpine", "https"},
		{"registry.internal:5000/x", "http"},
		{"127.0.0.2:5000/x", "http"},
	} {
		r, err := s.parseRef(tc.ref)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Context().Scheme(); got != tc.scheme {
			t.Errorf("scheme of %s = %s, want %s", tc.ref, got, tc.scheme)
		}
	}

	// go-containerregistry picks http for 10.0.0.5 on its own; the guard
	// refuses it before any connection.
	next := &recordingTransport{}
	g := &httpGuard{allow: s.plainHTTP, next: next}
	for _, tc := range []struct {
		url  string
		pass bool
	}{
		{"http://10.0.0.5:5000/v2/", false},
		{"http://example.com/v2/", false},
		{"http://registry.internal:5001/v2/", false},
		{"https://10.0.0.5:5000/v2/", true},
		{"http://127.0.0.1:5000/v2/", true},
		{"http://registry.internal:5000/v2/", true},
	} {
		next.called = false
		req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
		_, err := g.RoundTrip(req)
		if next.called != tc.pass || (!tc.pass && err == nil) {
			t.Errorf("%s: passed %v (err %v), want %v", tc.url, next.called, err, tc.pass)
		}
	}
	if _, err := s.parseRef("10.0.0.5:5000/x"); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Config{Dir: t.TempDir(), Insecure: []string{"http://x"}}); err == nil {
		t.Error("Open accepted an insecure registry that is a URL")
	}
}

type recordingTransport struct{ called bool }

func (rt *recordingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	rt.called = true
	return nil, syscall.ECONNREFUSED
}
