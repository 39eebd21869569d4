package boxinit

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// tarOf builds a tar stream from headers; a regular file's content is its
// header's Linkname field misused as data (cleared before writing).
func tarOf(t testing.TB, entries ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		data := []byte(nil)
		if h.Typeflag == tar.TypeReg {
			data = []byte(h.Linkname)
			h.Linkname = ""
			h.Size = int64(len(data))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	tw.Close()
	return buf.Bytes()
}

func reg(name, data string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Linkname: data}
}

func dir(name string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}
}

func symlink(name, target string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target}
}

// extractSeeds are streams a hostile request (or a broken host) could send:
// names that climb out, symlinks to climb through, links, sizes larger than
// the workspace, sparse entries that expand.
func extractSeeds(t testing.TB) [][]byte {
	seeds := [][]byte{
		tarOf(t, reg("a.txt", "hello"), dir("d"), reg("d/b", "x"), dir("e"), dir("e/f"), reg("e/f/g", "deep")),
		tarOf(t, reg("../outside/x", "escape")),
		tarOf(t, reg("/tmp/abs", "escape")),
		tarOf(t, reg("a/../../outside/x", "escape")),
		tarOf(t, symlink("l", "../outside"), reg("l/x", "through a symlink")),
		tarOf(t, symlink("l", "/"), dir("l/tmp"), reg("l/tmp/x", "through a symlink")),
		tarOf(t, symlink("l", "../outside"), dir("l")),
		tarOf(t, dir("d"), symlink("d/l", "../../outside"), reg("d/l/x", "two levels")),
		tarOf(t, reg("same", "1"), reg("same", "2")),
		tarOf(t, reg("f", "file"), reg("f/g", "below a file")),
		tarOf(t, &tar.Header{Name: "hard", Typeflag: tar.TypeLink, Linkname: "../outside/x"}),
		tarOf(t, &tar.Header{Name: "fifo", Typeflag: tar.TypeFifo}),
		tarOf(t, &tar.Header{Name: "dev", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}),
		tarOf(t, reg(strings.Repeat("n", 300), "long name"), reg(strings.Repeat("d/", 200)+"x", "deep")),
		tarOf(t, &tar.Header{Name: "sparse", Typeflag: tar.TypeReg, Size: 0,
			PAXRecords: map[string]string{"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "sparse", "GNU.sparse.realsize": "1099511627776"}}),
	}
	// A header that declares far more than the stream holds.
	big := tarOf(t, reg("big", "x"))
	copy(big[124:136], "77777777777\x00")
	fixChecksum(big[:512])
	// A NUL inside a name (the writer refuses to make one).
	nul := tarOf(t, reg("nulXname", "x"))
	nul[3] = 0
	fixChecksum(nul[:512])
	seeds = append(seeds, big, nul, nil, []byte("not a tar stream at all"))
	return seeds
}

// fixChecksum recomputes a tar header block's checksum after an edit.
func fixChecksum(h []byte) {
	copy(h[148:156], "        ")
	var sum int64
	for _, c := range h {
		sum += int64(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
}

// FuzzExtract feeds tar streams to the workspace extraction and checks that
// it never panics, never creates anything outside its directory, and never
// writes more than its byte bound.
func FuzzExtract(f *testing.F) {
	for _, s := range extractSeeds(f) {
		f.Add(s)
	}
	const limit = 1 << 20
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		box, outside := filepath.Join(base, "box"), filepath.Join(base, "outside")
		for _, d := range []string{box, outside} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		_ = extract(tar.NewReader(bytes.NewReader(data)), box, os.Getuid(), os.Getgid(), limit)
		ents, _ := os.ReadDir(base)
		if len(ents) != 2 {
			t.Fatalf("entries next to the workspace: %v", ents)
		}
		if ents, _ := os.ReadDir(outside); len(ents) != 0 {
			t.Fatalf("written outside the workspace: %v", ents)
		}
		var total int64
		filepath.WalkDir(box, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					total += fi.Size()
				}
			}
			return nil
		})
		if total > limit {
			t.Fatalf("%d bytes written, bound %d", total, limit)
		}
	})
}

func TestExtractRefusesWhatFuzzSeedsTry(t *testing.T) {
	for i, s := range extractSeeds(t) {
		base := t.TempDir()
		box := filepath.Join(base, "box")
		os.Mkdir(box, 0o755)
		os.Mkdir(filepath.Join(base, "outside"), 0o755)
		err := extract(tar.NewReader(bytes.NewReader(s)), box, os.Getuid(), os.Getgid(), 1<<20)
		if ents, _ := os.ReadDir(filepath.Join(base, "outside")); len(ents) != 0 {
			t.Errorf("seed %d: written outside: %v", i, ents)
		}
		if i == 0 && err != nil {
			t.Errorf("seed 0 (plain files): %v", err)
		}
	}
	// The byte bound is the workspace's: ENOSPC, before anything is written.
	s := tarOf(t, reg("a", strings.Repeat("x", 600)), reg("b", strings.Repeat("x", 600)))
	box := t.TempDir()
	err := extract(tar.NewReader(bytes.NewReader(s)), box, os.Getuid(), os.Getgid(), 1000)
	if err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("1200 bytes into 1000: %v", err)
	}
	if _, err := os.Stat(filepath.Join(box, "b")); err == nil {
		t.Errorf("b was created")
	}
}

// FuzzReadMessage feeds the length-prefixed config messages init reads from
// the supervisor: no panic, no allocation beyond MaxConfig, and whatever
// decodes encodes back to the same bytes (one encoding per value).
func FuzzReadMessage(f *testing.F) {
	rc := RunConfig{Argv: []string{"/bin/true"}, Env: []string{"A=b"}, Dir: Exact{"/box"},
		Rlimits: []Rlimit{{Resource: 7, Cur: 8, Max: 8}}, Collect: &Collect{Patterns: []string{"**"}}}
	good, _ := rc.MarshalBinary()
	cfg := Config{Hostname: "box", UID: 1000, GID: 1000, Binds: []Bind{{Src: "/usr", Dst: "/usr"}}, Devices: []string{"null"}}
	goodConfig, _ := cfg.MarshalBinary()
	frame := func(n uint32, b []byte) []byte {
		var h [4]byte
		binary.LittleEndian.PutUint32(h[:], n)
		return append(h[:], b...)
	}
	f.Add(frame(uint32(len(good)), good))
	f.Add(frame(uint32(len(goodConfig)), goodConfig))
	f.Add(frame(uint32(len(good))+10, good))
	f.Add(frame(MaxConfig+1, good))
	f.Add(frame(0xffffffff, nil))
	f.Add(frame(4, []byte("null")))
	f.Add(frame(3, []byte{'R', 0xff, 0xff}))
	f.Add([]byte{1, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		var rc RunConfig
		err := readMessage(bytes.NewReader(data), &rc)
		if err == nil && len(data) > 4+MaxConfig {
			t.Fatalf("accepted a message of %d bytes", len(data))
		}
		if err == nil {
			again, _ := rc.MarshalBinary()
			if n := binary.LittleEndian.Uint32(data); !bytes.Equal(again, data[4:4+n]) {
				t.Fatalf("decoded %x, encodes back to %x", data[4:4+n], again)
			}
		}
		var sc ShimCommand
		if readMessage(bytes.NewReader(data), &sc) == nil {
			again, _ := sc.MarshalBinary()
			if n := binary.LittleEndian.Uint32(data); !bytes.Equal(again, data[4:4+n]) {
				t.Fatalf("decoded %x, encodes back to %x", data[4:4+n], again)
			}
		}
		var c Config
		if readMessage(bytes.NewReader(data), &c) == nil {
			again, _ := c.MarshalBinary()
			if n := binary.LittleEndian.Uint32(data); !bytes.Equal(again, data[4:4+n]) {
				t.Fatalf("decoded %x, encodes back to %x", data[4:4+n], again)
			}
		}
	})
}

// TestWireRoundTrip: every field of Config and RunConfig survives the
// supervisor's encoding and init's decoding, bytes that are not UTF-8
// included; a message of the other type, a truncated one and one with
// bytes left over are refused.
func TestWireRoundTrip(t *testing.T) {
	cfg := Config{Hostname: "h", UID: 1000, GID: -2,
		Binds:     []Bind{{Src: "/usr", Dst: "/usr"}, {Src: "/lib", Dst: "/lib", Optional: true}},
		Generated: []GenFile{{Path: "/etc/passwd", Data: "root:x:0:0\n", Mode: 0o644}},
		Devices:   []string{"null", "zero"}}
	rc := RunConfig{Argv: Exact{"a\xff\x00b", ""}, Env: Exact{"K=\xc3("}, Dir: Exact{"/box"},
		Workspace: TmpfsSize{Bytes: 1 << 40, Inodes: 5}, Tmp: TmpfsSize{Bytes: 1, Inodes: 2}, Shm: TmpfsSize{Bytes: 3, Inodes: 4},
		Rlimits: []Rlimit{{Resource: 7, Cur: 1<<64 - 1, Max: 1<<64 - 1}, {Resource: 0, Cur: 0, Max: 9}},
		Seccomp: []byte{0, 1, 2, 255},
		Collect: &Collect{Patterns: Exact{"**", "x\xfe"}, MaxFiles: 3, MaxBytes: -1, MaxDepth: 8, MaxNanos: 1e9},
		Session: true, MergeOutput: true}
	b, _ := cfg.MarshalBinary()
	var cfg2 Config
	if err := cfg2.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(cfg, cfg2) {
		t.Errorf("Config round trip: %v\n%+v\n%+v", err, cfg, cfg2)
	}
	if err := new(RunConfig).UnmarshalBinary(b); err == nil {
		t.Errorf("a Config decoded as a RunConfig")
	}
	b, _ = rc.MarshalBinary()
	var rc2 RunConfig
	if err := rc2.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(rc, rc2) {
		t.Errorf("RunConfig round trip: %v\n%+v\n%+v", err, rc, rc2)
	}
	for n := 1; n < len(b); n++ {
		if err := new(RunConfig).UnmarshalBinary(b[:n]); err == nil {
			t.Fatalf("a RunConfig cut to %d of its %d bytes decoded", n, len(b))
		}
	}
	shim := ShimCommand{Path: "/bin/x", Argv: Exact{"x", "\xff"}, Env: Exact{"A=b"}, Dir: Exact{"/box"},
		Rlimits: []Rlimit{{Resource: 3, Cur: 1, Max: 2}}, TTY: true, Notify: true}
	sb, _ := shim.MarshalBinary()
	var shim2 ShimCommand
	if err := shim2.UnmarshalBinary(sb); err != nil || !reflect.DeepEqual(shim, shim2) {
		t.Errorf("ShimCommand round trip: %v\n%+v\n%+v", err, shim, shim2)
	}
	if err := new(ShimCommand).UnmarshalBinary(b); err == nil {
		t.Errorf("a RunConfig decoded as a ShimCommand")
	}
	if err := new(RunConfig).UnmarshalBinary(append(b, 0)); err == nil {
		t.Errorf("a RunConfig with a byte left over decoded")
	}
	rc.Collect, rc.Argv, rc.Rlimits = nil, nil, nil
	b, _ = rc.MarshalBinary()
	rc2 = RunConfig{}
	if err := rc2.UnmarshalBinary(b); err != nil || rc2.Collect != nil || rc2.Argv != nil {
		t.Errorf("RunConfig without collection or argv: %v %+v", err, rc2)
	}
}

func TestMayContain(t *testing.T) {
	cases := []struct {
		patterns []string
		dir      string
		want     bool
	}{
		{[]string{"**"}, "a/b", true},
		{[]string{"out/**"}, "out", true},
		{[]string{"out/**"}, "out/deep/er", true},
		{[]string{"out/**"}, "other", false},
		{[]string{"out/sub/**"}, "out", true},
		{[]string{"*.txt"}, "d", false},
		{[]string{"*/x.txt"}, "d", true},
		{[]string{"*/x.txt"}, "d/e", false},
		{[]string{"a/*/c"}, "a/b", true},
		{[]string{"a/*/c"}, "z/b", false},
		{[]string{`a\/b`}, "a", true}, // escapes: no guessing
		{[]string{"*.txt", "build/**"}, "build", true},
	}
	for _, tc := range cases {
		if got := mayContain(tc.patterns, tc.dir); got != tc.want {
			t.Errorf("mayContain(%q, %q) = %v", tc.patterns, tc.dir, got)
		}
	}
}
