package sandrun

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"strings"
	"testing"
)

// tarEntry is one entry of a test archive.
type tarEntry struct {
	name, link string
	typ        byte
	body       string
}

func makeTarGz(t testing.TB, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: typ, Mode: 0o644}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil && typ == tar.TypeReg {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func makeZip(t testing.TB, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		fh := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		switch e.typ {
		case tar.TypeSymlink:
			fh.SetMode(0o777 | 1<<27) // fs.ModeSymlink
		case tar.TypeDir:
			fh.SetMode(0o755 | 1<<31) // fs.ModeDir
		default:
			fh.SetMode(0o644)
		}
		w, err := zw.CreateHeader(fh)
		if err != nil {
			t.Fatal(err)
		}
		body := e.body
		if e.typ == tar.TypeSymlink {
			body = e.link
		}
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExtract(t *testing.T) {
	many := make([]tarEntry, 9)
	for i := range many {
		many[i] = tarEntry{name: strings.Repeat("d/", i) + "f", body: "x"}
	}
	tests := []struct {
		name    string
		entries []tarEntry
		want    []string // file names, or nil when refused
		refusal string   // part of the refusal
	}{
		{"python client layout", []tarEntry{{name: "./", typ: tar.TypeDir}, {name: "./main.py", body: "import util"}, {name: "./util.py", body: "x=1"}}, []string{"main.py", "util.py"}, ""},
		{"nested", []tarEntry{{name: "a/b/c.txt", body: "c"}}, []string{"a/b/c.txt"}, ""},
		{"dotdot", []tarEntry{{name: "../x", body: "x"}}, nil, "leaves the job directory"},
		{"inner dotdot", []tarEntry{{name: "a/../../x", body: "x"}}, nil, "leaves the job directory"},
		{"absolute", []tarEntry{{name: "/etc/x", body: "x"}}, nil, "absolute"},
		{"backslash", []tarEntry{{name: "..\\x", body: "x"}}, nil, "absolute"},
		{"symlink", []tarEntry{{name: "l", link: "/etc/passwd", typ: tar.TypeSymlink}}, nil, "not a regular file"},
		{"hardlink", []tarEntry{{name: "l", link: "/etc/passwd", typ: tar.TypeLink}}, nil, "not a regular file"},
		{"device", []tarEntry{{name: "d", typ: tar.TypeChar}}, nil, "not a regular file"},
		{"too many", many, nil, "more than 8 files"},
		{"too large", []tarEntry{{name: "big", body: strings.Repeat("x", 1025)}}, nil, "exceed 1024 bytes"},
		{"too deep", []tarEntry{{name: strings.Repeat("d/", 17) + "f", body: "x"}}, nil, "deeper than 16"},
		{"twice", []tarEntry{{name: "a", body: "1"}, {name: "./a", body: "2"}}, nil, "twice"},
	}
	for _, kind := range []string{"tar.gz", "zip"} {
		for _, tc := range tests {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				if kind == "zip" && (tc.entries[0].typ == tar.TypeLink || tc.entries[0].typ == tar.TypeChar) {
					t.Skip("zip has no such entries")
				}
				b := newBundle(8, 1024)
				var err error
				if kind == "zip" {
					err = b.addZip("a.zip", makeZip(t, tc.entries))
				} else {
					err = b.addTarGz("a.tar.gz", makeTarGz(t, tc.entries))
				}
				if tc.want == nil {
					var re *refused
					if !errors.As(err, &re) || !strings.Contains(re.msg, tc.refusal) {
						t.Fatalf("err = %v, want a refusal with %q", err, tc.refusal)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, f := range b.files {
					got = append(got, f.name)
				}
				if strings.Join(got, ",") != strings.Join(tc.want, ",") {
					t.Fatalf("files = %v, want %v", got, tc.want)
				}
			})
		}
	}
}

func TestGzipBomb(t *testing.T) {
	// 8 MiB of zeros compress to ~8 KiB: the bound is on what is read.
	data := makeTarGz(t, []tarEntry{{name: "zeros", body: string(make([]byte, 8<<20))}})
	b := newBundle(8, 1<<20)
	if err := b.addTarGz("bomb.tar.gz", data); err == nil || !strings.Contains(err.Error(), "exceed") {
		t.Fatalf("err = %v, want the size bound", err)
	}
}

func TestFakeTar(t *testing.T) {
	b := newBundle(8, 1024)
	if err := b.addFakeTar([]byte("----Tar\nPath: main.py\nSize: 12\n\nprint('hi')\n")); err != nil {
		t.Fatal(err)
	}
	if len(b.files) != 1 || b.files[0].name != "main.py" || string(b.files[0].content) != "print('hi')\n" {
		t.Fatalf("files = %+v", b.files)
	}
	if err := newBundle(8, 1024).addFakeTar([]byte("----Tar\nPath: ../../etc/cron.d/x\n\n* * * * * root id\n")); err == nil {
		t.Fatal("a fake tar's traversal was accepted")
	}
}

func TestMatchPattern(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"*", "a/b.txt", true},
		{"*.png", "results/plot.png", true},
		{"*.png", "plot.jpg", false},
		{"results*", "results/a.json", true},
		{"out.txt", "out.txt", true},
		{"out.txt", "a/out.txt", false},
		{"results/", "results/a.json", false},
	}
	for _, tc := range tests {
		t.Run(tc.pattern+" "+tc.name, func(t *testing.T) {
			if got := matchPattern(tc.pattern, tc.name); got != tc.want {
				t.Fatalf("matchPattern(%q, %q) = %v", tc.pattern, tc.name, got)
			}
		})
	}
}

// checkBundle fails unless every file the bundle took obeys its rules.
func checkBundle(t *testing.T, b *bundle) {
	t.Helper()
	var total int64
	if len(b.files) > b.maxFiles {
		t.Fatalf("%d files, bound %d", len(b.files), b.maxFiles)
	}
	for _, f := range b.files {
		total += int64(len(f.content))
		if f.name == "" || strings.HasPrefix(f.name, "/") || containsDotDot(f.name) || strings.Count(f.name, "/") > maxDepth || strings.ContainsAny(f.name, "\\\x00") {
			t.Fatalf("unsafe name %q", f.name)
		}
	}
	if total > b.maxBytes {
		t.Fatalf("%d bytes, bound %d", total, b.maxBytes)
	}
}

func FuzzTarGz(f *testing.F) {
	f.Add(makeTarGz(f, []tarEntry{{name: "./main.py", body: "print(1)"}, {name: "a/b", body: "x"}}))
	f.Add(makeTarGz(f, []tarEntry{{name: "../x", body: "x"}}))
	f.Add(makeTarGz(f, []tarEntry{{name: "l", link: "x", typ: tar.TypeSymlink}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		b := newBundle(8, 4096)
		_ = b.addTarGz("f.tar.gz", data)
		checkBundle(t, b)
	})
}

func FuzzZip(f *testing.F) {
	f.Add(makeZip(f, []tarEntry{{name: "main.py", body: "print(1)"}, {name: "a/b", body: "x"}}))
	f.Add(makeZip(f, []tarEntry{{name: "../x", body: "x"}}))
	f.Add(makeZip(f, []tarEntry{{name: "l", link: "x", typ: tar.TypeSymlink}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		b := newBundle(8, 4096)
		_ = b.addZip("f.zip", data)
		checkBundle(t, b)
	})
}
