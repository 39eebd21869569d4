package jail

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runbox-dev/runbox/internal/jail/boxinit"
)

// WaitRetired waits until every box whose run is over has been destroyed
// (its cgroup removed, its uid slot released): runs return before that.
func WaitRetired(j *Jail) { j.retiring.Wait() }

// SetPhaseTimeouts sets the bounds of the phases of j's boxes, for the
// tests of package jail_test that check those bounds hold.
func SetPhaseTimeouts(j *Jail, ready, setup, tail, teardown time.Duration) {
	j.phases = phaseTimeouts{ready: ready, setup: setup, tail: tail, teardown: teardown}
}

// collectedStream is a tar stream as runbox-init writes one.
func collectedStream(t testing.TB, files ...File) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.Name, Mode: int64(f.Mode), Size: int64(len(f.Data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(f.Data)
	}
	tw.Close()
	return buf.Bytes()
}

// longName is a path of exactly n bytes ending in tag, of 254-byte
// elements of non-ASCII bytes, so that no tar format but PAX can carry it.
func longName(n int, tag string) string {
	el := strings.Repeat("é", 127) + "/"
	s := strings.Repeat(el, n/len(el)+1)[:n-len(tag)]
	return s + tag
}

func TestReadCollectedBounds(t *testing.T) {
	c := Collect{Patterns: []string{"**"}, MaxFiles: 50, MaxBytes: 50 * 3000}
	t.Run("the most init sends fits the host's bound", func(t *testing.T) {
		// MaxFiles files with the longest names init sends, filling
		// MaxBytes: every header is a PAX one.
		var files []File
		for i := range c.MaxFiles {
			name := longName(boxinit.MaxCollectPath, fmt.Sprintf("%03d", i))
			files = append(files, File{Name: name, Data: bytes.Repeat([]byte{byte(i)}, 3000), Mode: 0o644})
		}
		s := collectedStream(t, files...)
		if int64(len(s)) > collectStreamBound(c) {
			t.Fatalf("stream of %d bytes, bound %d", len(s), collectStreamBound(c))
		}
		got, err := readCollected(bytes.NewReader(s), &c)
		if err != nil || len(got) != c.MaxFiles {
			t.Fatalf("%d files, %v", len(got), err)
		}
	})
	t.Run("beyond the bounds", func(t *testing.T) {
		for name, s := range map[string][]byte{
			"too many files":  collectedStream(t, File{Name: "a"}, File{Name: "b"}, File{Name: "c"}),
			"too many bytes":  collectedStream(t, File{Name: "a", Data: make([]byte, 600)}, File{Name: "b", Data: make([]byte, 600)}),
			"a long name":     collectedStream(t, File{Name: strings.Repeat("n", boxinit.MaxCollectPath+1)}),
			"a climbing name": collectedStream(t, File{Name: "../x"}),
			"cut in the data": collectedStream(t, File{Name: "a", Data: make([]byte, 900)})[:1024],
		} {
			small := Collect{Patterns: []string{"**"}, MaxFiles: 2, MaxBytes: 1000}
			got, err := readCollected(bytes.NewReader(s), &small)
			if err == nil {
				t.Errorf("%s: no error, %d files", name, len(got))
			}
			for _, f := range got {
				if len(f.Data) == 900 {
					t.Errorf("%s: a file cut short came back", name)
				}
			}
		}
	})
}

// FuzzReadCollected feeds tar streams to the host's reader of collected
// files: it must never panic, read past its bound, return more than its
// bounds, or return a name init would not send.
func FuzzReadCollected(f *testing.F) {
	f.Add(collectedStream(f, File{Name: "a.txt", Data: []byte("hello"), Mode: 0o644}, File{Name: "d/b", Data: []byte("x")}))
	f.Add(collectedStream(f, File{Name: longName(1000, "x"), Data: []byte("long")}))
	f.Add(collectedStream(f, File{Name: strings.Repeat("n", 3000), Data: []byte("too long")}))
	f.Add(collectedStream(f, File{Name: "../up"}, File{Name: "/abs"}))
	f.Add(collectedStream(f, File{Name: "big", Data: make([]byte, 5000)}))
	var sym bytes.Buffer
	tw := tar.NewWriter(&sym)
	tw.WriteHeader(&tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"})
	tw.WriteHeader(&tar.Header{Name: "sparse", Typeflag: tar.TypeReg, PAXRecords: map[string]string{
		"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "sparse", "GNU.sparse.realsize": "1099511627776"}})
	tw.Close()
	f.Add(sym.Bytes())
	f.Add([]byte{})
	f.Add(make([]byte, 1024))
	c := Collect{Patterns: []string{"**"}, MaxFiles: 4, MaxBytes: 4096}
	bound := collectStreamBound(collectLimits(c))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		files, _ := readCollected(r, &c)
		if read := int64(len(data) - r.Len()); read > bound {
			t.Fatalf("read %d bytes, bound %d", read, bound)
		}
		if len(files) > c.MaxFiles {
			t.Fatalf("%d files", len(files))
		}
		var total int
		for _, f := range files {
			total += len(f.Data)
			if !collectedName(f.Name) {
				t.Fatalf("name %q", f.Name)
			}
		}
		if int64(total) > c.MaxBytes {
			t.Fatalf("%d bytes", total)
		}
	})
}

// TestRobustTeardownBounded: the wait for a killed box to exit is bounded,
// whatever the box does (a process stuck in the kernel cannot be killed).
func TestRobustTeardownBounded(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	pidfd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		t.Skipf("pidfd_open: %v", err)
	}
	defer unix.Close(pidfd)
	start := time.Now()
	if waitExit(pidfd, 100*time.Millisecond) {
		t.Fatal("a live process was seen to exit")
	}
	if el := time.Since(start); el < 100*time.Millisecond || el > 2*time.Second {
		t.Errorf("waited %v for a bound of 100ms", el)
	}
	cmd.Process.Kill()
	if !waitExit(pidfd, 10*time.Second) {
		t.Fatal("a killed process was not seen to exit")
	}
	// A box that never dies keeps its slot (no later box may share its
	// uids) and destroy still returns.
	b := &box{pidfd: -1, undead: true, slot: &slot{fd: -1}, teardown: time.Millisecond}
	b.destroy(slog.New(slog.DiscardHandler))
	if b.slot != nil {
		t.Error("slot not dropped from the box")
	}
}

func TestCheckSpec(t *testing.T) {
	lim := Defaults
	cases := []struct {
		name string
		spec Spec
		want error
	}{
		{"fits", Spec{Argv: []string{"true"}, Limits: lim}, nil},
		{"one long argument", Spec{Argv: []string{"true", strings.Repeat("a", MaxArgBytes+1)}, Limits: lim}, ErrSpecTooLarge},
		{"one long variable", Spec{Argv: []string{"true"}, Env: []string{"A=" + strings.Repeat("a", MaxArgBytes)}, Limits: lim}, ErrSpecTooLarge},
		{"many arguments", Spec{Argv: append([]string{"true"}, strings.Split(strings.Repeat("aa,", MaxConfigBytes/2), ",")...), Limits: lim}, ErrSpecTooLarge},
		{"files beyond the disk", Spec{Argv: []string{"true"}, Files: []File{{Name: "a", Data: make([]byte, lim.Disk+1)}}, Limits: lim}, ErrWorkspaceFull},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := checkSpec(tc.spec)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("%v, want %v", err, tc.want)
			}
		})
	}
}
