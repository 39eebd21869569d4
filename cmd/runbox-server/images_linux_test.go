package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	ggremote "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// pythonImage is an image of Debian's python3 taken from this host: the
// interpreter, the libraries it loads, its standard library, Debian's
// merged-/usr symlinks, a marker in /etc and a variable in its
// configuration. Nothing else of the host: no shell, no compiler.
func pythonImage(t *testing.T) v1.Image {
	t.Helper()
	exe, err := filepath.EvalSymlinks("/usr/bin/python3")
	if err != nil {
		t.Skip("requires Debian's python3 (/usr/bin/python3)")
	}
	out, err := exec.Command("ldd", exe).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", exe, err)
	}
	paths := []string{exe, "/usr/bin/python3"}
	for _, line := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				paths = append(paths, f)
			}
		}
	}
	stdlib := filepath.Join("/usr/lib", filepath.Base(exe)) // /usr/lib/python3.N
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	mkdirs := func(p string) {
		var parts []string
		for d := filepath.Dir(p); d != "/"; d = filepath.Dir(d) {
			parts = append([]string{d}, parts...)
		}
		for _, d := range parts {
			if !dirs[d] {
				dirs[d] = true
				tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755})
			}
		}
	}
	written := map[string]bool{}
	addFile := func(real string) {
		if written[real] {
			return
		}
		written[real] = true
		b, err := os.ReadFile(real)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(real)
		mkdirs(real)
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(real, "/"), Mode: int64(st.Mode().Perm()), Size: int64(len(b))})
		tw.Write(b)
	}
	for _, l := range []struct{ name, target string }{{"bin", "usr/bin"}, {"lib", "usr/lib"}, {"lib64", "usr/lib64"}} {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: l.name, Linkname: l.target})
	}
	for _, p := range paths {
		// The path as the image names it (its directory resolved through
		// the merged-/usr links), a symlink to the file when it is one.
		dir, err := filepath.EvalSymlinks(filepath.Dir(p))
		if err != nil {
			t.Fatal(err)
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Fatal(err)
		}
		addFile(real)
		if at := filepath.Join(dir, filepath.Base(p)); at != real && !written[at] {
			written[at] = true
			mkdirs(at)
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: strings.TrimPrefix(at, "/"), Linkname: real})
		}
	}
	err = filepath.WalkDir(stdlib, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && (d.Name() == "__pycache__" || d.Name() == "test" || strings.HasPrefix(d.Name(), "config-")):
			return filepath.SkipDir
		case d.Type().IsRegular():
			addFile(p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mkdirs("/etc/x")
	marker := []byte("from the image\n")
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/image-marker", Mode: 0o644, Size: int64(len(marker))})
	tw.Write(marker)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	tarBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tarBytes)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin", "IMAGE_VAR=from-config", "HOME=/root"}
	cf.Config.WorkingDir = "/srv"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// testRegistry is an OCI registry on 127.0.0.1 (plain HTTP, as Docker
// allows on loopback) holding img as repo:tag; it returns the reference.
func testRegistry(t *testing.T, repoTag string, img v1.Image) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	ref := strings.TrimPrefix(srv.URL, "http://") + "/" + repoTag
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := ggremote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return ref
}

// reachableDir is a temporary folder others may pass through, as the
// image store's parents must be for the boxes' ids.
func reachableDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "runbox-images-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o711); err != nil {
		t.Fatal(err)
	}
	return d
}

// An environment on an image, as a new user adds one: an environment file
// naming the image, runbox env pull, images, test, the server running it,
// prune. The program sees the image's files and not the host's.
func TestImageEnvironmentEndToEnd(t *testing.T) {
	needRoot(t)
	ref := testRegistry(t, "runbox/python:3", pythonImage(t))
	data := reachableDir(t)
	envs := t.TempDir()
	toml := `name = "pyimg"
image = "` + ref + `"
version = ["python3", "--version"]
source = "main.py"
run = ["python3", "{main}"]
env = ["PYTHONDONTWRITEBYTECODE=1"]
`
	if err := os.WriteFile(filepath.Join(envs, "pyimg.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	// The python environment's own conformance program.
	if err := os.CopyFS(filepath.Join(envs, "pyimg"), os.DirFS("../../internal/env/defaults/python")); err != nil {
		t.Fatal(err)
	}

	r := runbox(t, "", "env", "list", "--init", initBin, "--data-dir", data, "--environments", envs, "pyimg")
	if r.code != 0 || !strings.Contains(r.stdout, "not pulled yet") {
		t.Fatalf("env list before a pull: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = runbox(t, "", "env", "pull", "--data-dir", data, "Not A Reference"); r.code != 2 || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("env pull of a malformed reference: %d %q", r.code, r.stderr)
	}
	if r = runbox(t, "", "env", "images", "--all", "--data-dir", data); r.code != 2 {
		t.Fatalf("env images --all: %d %q", r.code, r.stderr)
	}
	r = runbox(t, "", "env", "pull", "--data-dir", data, ref)
	if r.code != 0 || !strings.Contains(r.stdout, "sha256:") {
		t.Fatalf("env pull: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("runbox env pull:\n%s", r.stdout)
	r = runbox(t, "", "env", "images", "--data-dir", data)
	if r.code != 0 || !strings.Contains(r.stdout, ref) {
		t.Fatalf("env images: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("runbox env images:\n%s", r.stdout)
	r = runbox(t, "", "env", "test", "--init", initBin, "--data-dir", data, "--environments", envs, "pyimg")
	if r.code != 0 || !strings.Contains(r.stdout, "ok") || !strings.Contains(r.stdout, "Python 3.") {
		t.Fatalf("env test: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("runbox env test:\n%s", r.stdout)

	srv, addr, exited := startServe(t, "--data-dir", data, "--environments", envs)
	client := &http.Client{}
	er, err := client.Get("http://" + addr + "/v1/environments")
	if err != nil {
		t.Fatal(err)
	}
	var list []struct {
		Name, Image, Version string
		Available            bool
	}
	json.NewDecoder(er.Body).Decode(&list)
	er.Body.Close()
	found := false
	for _, e := range list {
		if e.Name == "pyimg" {
			found = e.Image == ref && e.Available && strings.HasPrefix(e.Version, "Python 3.")
		}
	}
	if !found {
		t.Errorf("/v1/environments has no available pyimg on %s: %+v", ref, list)
	}
	prog := `import os, sys
print(os.path.exists("/usr/bin/gcc"), os.path.exists("/bin/sh"), open("/etc/image-marker").read().strip())
print(os.environ.get("IMAGE_VAR"), os.environ["HOME"], os.getcwd(), sys.executable)
try:
    open("/usr/owned", "w")
except OSError as e:
    print(e.strerror)
`
	content, _ := json.Marshal(prog)
	body := `{"language": "pyimg", "files": [{"name": "main.py", "content": ` + string(content) + `}]}`
	var resp struct {
		Language string
		Run      struct{ Status, Stdout, Stderr string }
	}
	post(t, client, "http://"+addr+"/v1/run", body, 200, &resp)
	want := "False False from the image\nfrom-config /box /box /usr/bin/python3\nRead-only file system\n"
	if resp.Run.Status != "ok" || resp.Run.Stdout != want {
		t.Fatalf("run on the image: %+v, want stdout %q", resp, want)
	}
	// The host's python environment is still the host's.
	post(t, client, "http://"+addr+"/v1/run", `{"language": "python", "files": [{"name": "m.py", "content": "import os; print(os.path.exists('/usr/bin/gcc'))"}]}`, 200, &resp)
	if resp.Run.Stdout != "True\n" {
		t.Fatalf("host python after the image: %+v", resp)
	}
	stopServe(t, srv, exited)

	// Prune keeps what an environment names, --all does not.
	r = runbox(t, "", "env", "prune", "--data-dir", data, "--environments", envs)
	if r.code != 0 || strings.Contains(r.stdout, "removed") {
		t.Fatalf("env prune: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runbox(t, "", "env", "prune", "--all", "--data-dir", data)
	if r.code != 0 || !strings.Contains(r.stdout, "removed "+ref) {
		t.Fatalf("env prune --all: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = runbox(t, "", "env", "images", "--data-dir", data); strings.Contains(r.stdout, ref) {
		t.Fatalf("env images after prune --all:\n%s", r.stdout)
	}
}
