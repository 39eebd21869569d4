package jail_test

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/jail"
)

// Files through the box's own view: symlinks (inside, to outside, in the
// middle of a path), FIFOs, `..`, paths outside the writable areas, sizes,
// exact names, ownership.
func TestSessionFiles(t *testing.T) {
	s := openSession(t, jail.SessionSpec{Limits: jail.Limits{FileSize: 64 << 10}})
	ctx := t.Context()
	res := execIn(t, s, jail.CommandSpec{Argv: sh(`echo inside > a.txt; ln -s /etc/passwd link-etc; ln -s ../../etc/passwd link-rel
ln -s a.txt link-here; mkdir dir; ln -s /box dir/up; mkfifo fifo; echo secret > /tmp/t; ln -s /tmp/t link-tmp`)})
	expectStatus(t, res, jail.StatusOK)
	errno := func(err error) syscall.Errno {
		var e syscall.Errno
		if errors.As(err, &e) {
			return e
		}
		return 0
	}
	for _, tc := range []struct {
		path string
		want syscall.Errno
	}{
		{"link-etc", syscall.ELOOP}, {"link-rel", syscall.ELOOP}, {"link-here", syscall.ELOOP}, {"link-tmp", syscall.ELOOP},
		{"dir/up/a.txt", syscall.ELOOP}, {"/box/dir/up/a.txt", syscall.ELOOP},
		{"fifo", syscall.EINVAL}, {"dir", syscall.EISDIR}, {"missing", syscall.ENOENT},
		{"../etc/passwd", syscall.EXDEV}, {"/box/../etc/passwd", syscall.EXDEV}, {"dir/../../etc/passwd", syscall.EXDEV},
		{"/etc/passwd", syscall.EACCES}, {"/proc/self/environ", syscall.EACCES}, {"/dev/null", syscall.EACCES},
		{"/boxx/a.txt", syscall.EACCES}, {"a\x00b", syscall.EINVAL},
	} {
		start := time.Now()
		data, err := s.ReadFile(ctx, strings.ReplaceAll(tc.path, `\x00`, "\x00"), 1<<20)
		if errno(err) != tc.want {
			t.Errorf("read %q: %q, %v; want %v", tc.path, data, err, tc.want)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("read %q took %v", tc.path, d)
		}
		if err := s.WriteFile(ctx, tc.path, []byte("host"), 0); err == nil && tc.want != syscall.ENOENT {
			t.Errorf("write %q succeeded", tc.path)
		}
	}
	if data, err := s.ReadFile(ctx, "/box/a.txt", 100); err != nil || string(data) != "inside\n" {
		t.Fatalf("read a.txt: %q %v", data, err)
	}
	if data, err := s.ReadFile(ctx, "/tmp/t", 100); err != nil || string(data) != "secret\n" {
		t.Fatalf("read /tmp/t: %q %v", data, err)
	}
	if _, err := s.ReadFile(ctx, "a.txt", 3); errno(err) != syscall.EFBIG {
		t.Errorf("read past its bound: %v", err)
	}
	// Written files are the box user's, with the mode asked, exact names.
	for name, mode := range map[string]uint32{"new.sh": 0o755, "dir/plain": 0, "a\xff": 0o600} {
		if err := s.WriteFile(ctx, name, []byte("#!/bin/sh\necho ran\n"), mode); err != nil {
			t.Fatalf("write %q: %v", name, err)
		}
	}
	res = execIn(t, s, jail.CommandSpec{Argv: sh("stat -c '%u %a' new.sh dir/plain; ./new.sh")})
	if string(res.Stdout) != "1000 755\n1000 644\nran\n" {
		t.Errorf("written files seen by a command: %q %q", res.Stdout, res.Stderr)
	}
	if err := s.WriteFile(ctx, "big", make([]byte, 100<<10), 0); errno(err) != syscall.EFBIG {
		t.Errorf("a write past the session's file size: %v", err)
	}
	ents, err := s.List(ctx, "/box")
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for _, e := range ents {
		types[e.Name] = e.Type
	}
	for name, want := range map[string]string{"a.txt": "file", "link-etc": "symlink", "fifo": "fifo", "dir": "dir", "a\xff": "file"} {
		if types[name] != want {
			t.Errorf("list: %q is %q, want %q (%v)", name, types[name], want, types)
		}
	}
	if _, err := s.List(ctx, "dir/up"); errno(err) != syscall.ELOOP && errno(err) != syscall.ENOTDIR {
		t.Errorf("list through a symlink: %v", err)
	}
	// Remove takes the link, not its target; a non-empty directory stays.
	if err := s.Remove(ctx, "link-here"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadFile(ctx, "a.txt", 100); err != nil {
		t.Errorf("the link's target went with it: %v", err)
	}
	if err := s.Remove(ctx, "dir"); errno(err) != syscall.ENOTEMPTY {
		t.Errorf("remove a non-empty directory: %v", err)
	}
	for _, p := range []string{"/box", "..", "/etc/passwd", "dir/up/a.txt"} {
		if err := s.Remove(ctx, p); err == nil {
			t.Errorf("remove %q succeeded", p)
		}
	}
}

// A command swaps a directory for a symlink to elsewhere in a tight loop
// while the host reads and writes through it: the host never reads the
// other side, nor writes there.
func TestSessionFilesRace(t *testing.T) {
	s := openSession(t, jail.SessionSpec{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	res := execIn(t, s, jail.CommandSpec{Argv: sh("mkdir -p /box/real /tmp/other; echo inside > /box/real/f; echo other > /tmp/other/f")})
	expectStatus(t, res, jail.StatusOK)
	swapping := make(chan struct{})
	go func() {
		defer close(swapping)
		_, _ = s.Exec(ctx, jail.CommandSpec{Argv: sh(`cd /box; while :; do mv real hold; ln -s /tmp/other real; rm real; mv hold real; done`),
			WallTime: time.Minute})
	}()
	seen := map[string]int{}
	for i := 0; i < 300; i++ {
		data, err := s.ReadFile(t.Context(), "real/f", 100)
		switch {
		case err == nil:
			seen[string(data)]++
		default:
			seen["error"]++
		}
		_ = s.WriteFile(t.Context(), "real/w", []byte("host"), 0)
	}
	cancel()
	<-swapping
	if seen["other\n"] != 0 {
		t.Fatalf("the host read through the command's symlink: %v", seen)
	}
	res = execIn(t, s, jail.CommandSpec{Argv: sh("ls /tmp/other")})
	if strings.Contains(string(res.Stdout), "w") {
		t.Fatalf("the host wrote through the command's symlink: %q", res.Stdout)
	}
	if seen["inside\n"] == 0 {
		t.Logf("never read the file between swaps: %v", seen)
	}
	t.Logf("outcomes: %v", seen)
	alive(t, s)
}
