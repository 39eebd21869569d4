package jail_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/runbox-dev/runbox/internal/jail"
)

// testRoot makes a small root filesystem as an unpacked image would be: a
// static program in /usr/bin, /bin a symlink to it, an /etc with a marker,
// a subdirectory, a passwd of its own and an owner-only secret. The
// directories leading to it are traversable by the box's ids, as the image
// store's are.
func testRoot(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("requires gcc to build testdata/imageroot.c")
	}
	dir, err := os.MkdirTemp("", "runbox-roottest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	for _, d := range []string{"usr/bin", "etc/sub", "proc", "sys", "var/lib"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("gcc", "-static", "-O1", "-o", filepath.Join(root, "usr/bin/imageroot"), "testdata/imageroot.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc -static: %v\n%s", err, out)
	}
	files := map[string]string{"etc/marker": "from the image\n", "etc/sub/nested": "nested\n",
		"etc/passwd": "imageuser:x:0:0::/:/bin/sh\n", "etc/secret": "no\n", "topfile": "top\n"}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "etc/secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestRootBindsSkipTheBoxsOwn(t *testing.T) {
	root := testRoot(t)
	binds, err := jail.RootBinds(root)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, b := range binds {
		got[b.Dst] = b.Src
	}
	for _, want := range []string{"/usr", "/etc", "/bin", "/var"} {
		if got[want] != root+want {
			t.Errorf("bind of %s: %q, want %q", want, got[want], root+want)
		}
	}
	for _, not := range []string{"/proc", "/sys", "/topfile"} {
		if _, ok := got[not]; ok {
			t.Errorf("%s is bound from the root", not)
		}
	}
	for _, bad := range []string{"", "relative", "/a/../b", "/"} {
		if _, err := jail.RootBinds(bad); err == nil {
			t.Errorf("RootBinds(%q) is accepted", bad)
		}
	}
}

// A box on a root sees that root's files and not the host's, read-only, with
// the generated /etc files over the image's, and its own /box.
func TestBoxOnRootSeesOnlyTheRoot(t *testing.T) {
	j := needJail(t)
	root := testRoot(t)
	res := run(t, jail.Spec{Argv: []string{"/usr/bin/imageroot"}, Root: root})
	expectStatus(t, res, jail.StatusOK)
	f := fields(t, res.Stdout)
	want := map[string]string{
		"marker": "from the image", "nested": "nested", "secret": "error:Permission denied",
		"passwd_generated": "1", "image_passwd": "0",
		"host_gcc": "0", "host_sh": "0", "var": "1", "sys": "0", "via_link": "1",
		"write_usr": "Read-only file system", "write_etc": "Read-only file system", "write_box": "ok", "cwd": "/box",
	}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("%s = %q, want %q\n%s", k, f[k], v, res.Stdout)
		}
	}
	// The same jail's host-root boxes are unchanged by it.
	res = run(t, jail.Spec{Argv: sh("test -x /usr/bin/gcc && test ! -e /etc/marker && echo host")})
	if string(res.Stdout) != "host\n" {
		t.Errorf("a host-root box after a root box: %q %q", res.Stdout, res.Stderr)
	}
	_ = j
}

func TestSessionOnRoot(t *testing.T) {
	j := needJail(t)
	root := testRoot(t)
	s, err := j.OpenSession(t.Context(), jail.SessionSpec{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := s.Exec(t.Context(), jail.CommandSpec{Argv: []string{"/bin/imageroot"}})
	if err != nil {
		t.Fatal(err)
	}
	f := fields(t, res.Stdout)
	if f["marker"] != "from the image" || f["host_gcc"] != "0" || f["passwd_generated"] != "1" {
		t.Errorf("session on a root sees:\n%s%s", res.Stdout, res.Stderr)
	}
}
