package sandrun_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/runbox-dev/runbox/internal/compat"
	"github.com/runbox-dev/runbox/internal/compat/compattest"
	"github.com/runbox-dev/runbox/internal/compat/sandrun"
	"github.com/runbox-dev/runbox/internal/testwait"
)

func TestMain(m *testing.M) { compattest.Main(m) }

// server serves Sandrun's API at /sandrun of a native API with the test
// configuration; it returns the native base and the adapter's.
func server(t *testing.T) (string, string) {
	t.Helper()
	base := compattest.Server(t, compattest.Config(), "/sandrun", func(n *compat.Native) http.Handler { return sandrun.New(n) })
	return base, base + "/sandrun"
}

// part is one multipart part: a files part when filename is set.
type part struct {
	field, filename string
	body            []byte
}

func submit(t *testing.T, base string, parts ...part) (int, map[string]any) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		var w io.Writer
		var err error
		if p.filename != "" {
			w, err = mw.CreateFormFile(p.field, p.filename)
		} else {
			w, err = mw.CreateFormField(p.field)
		}
		if err != nil {
			t.Fatal(err)
		}
		w.Write(p.body)
	}
	mw.Close()
	resp, err := http.Post(base+"/submit", mw.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, decode(t, resp)
}

func decode(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: answer %d is not a JSON object: %q", resp.Request.URL, resp.StatusCode, raw)
	}
	return m
}

func get(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, decode(t, resp)
}

func getRaw(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func manifest(t *testing.T, m map[string]any) part {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return part{field: "manifest", body: b}
}

// eventually polls until a condition holds (testwait.Eventually).
var eventually = testwait.Eventually

// wait polls /status as Sandrun's clients do until the job ends.
func wait(t *testing.T, base, id string) map[string]any {
	t.Helper()
	var st map[string]any
	eventually(t, 30*time.Second, func() error {
		code, v := get(t, base+"/status/"+id)
		if code != 200 {
			return fmt.Errorf("status: %d %v", code, v)
		}
		if s := v["status"]; s != "completed" && s != "failed" {
			return fmt.Errorf("job still %v", s)
		}
		st = v
		return nil
	})
	return st
}

const script = `import sys, os
os.makedirs("results", exist_ok=True)
open("results/out.txt", "w").write("args=" + ",".join(sys.argv[1:]))
open("plot.png", "wb").write(b"\x89PNG")
print("hello", sys.argv[1])
print("warn", file=sys.stderr)
`

func TestPlainFile(t *testing.T) {
	_, base := server(t)
	code, v := submit(t, base, part{field: "files", filename: "job.py", body: []byte(script)},
		manifest(t, map[string]any{"entrypoint": "job.py", "interpreter": "python3", "args": []string{"a b", "c"},
			"outputs": []string{"results*", "*.png"}, "timeout": 20, "memory_mb": 256}))
	id, _ := v["job_id"].(string)
	if code != 200 || v["status"] != "queued" || len(id) < 20 {
		t.Fatalf("submit: %d %v", code, v)
	}
	st := wait(t, base, id)
	meta, _ := st["execution_metadata"].(map[string]any)
	if st["status"] != "completed" || meta["exit_code"] != float64(0) || meta["interpreter"] != "python3" || st["job_hash"] == "" {
		t.Fatalf("status: %v", st)
	}
	if _, ok := meta["cpu_seconds"].(float64); !ok || meta["memory_peak_bytes"] == float64(0) {
		t.Fatalf("metadata: %v", meta)
	}
	sig, _ := st["signature"].(map[string]any)
	if sig["algorithm"] == nil || sig["key_id"] == nil || sig["value"] == nil {
		t.Fatalf("signature: %v", st["signature"])
	}
	outs, _ := st["output_files"].(map[string]any)
	if len(outs) != 2 || outs["results/out.txt"] == nil || obj(outs["plot.png"])["type"] != "image" {
		t.Fatalf("output_files: %v", st["output_files"])
	}

	code, v = get(t, base+"/logs/"+id)
	if code != 200 || v["stdout"] != "hello a b\n" || v["stderr"] != "warn\n" {
		t.Fatalf("logs: %d %v", code, v)
	}

	code, v = get(t, base+"/outputs/"+id)
	files, _ := v["files"].([]any)
	infos, _ := v["file_info"].([]any)
	if code != 200 || v["total_files"] != float64(2) || len(files) != 2 || len(infos) != 2 {
		t.Fatalf("outputs: %d %v", code, v)
	}
	for i, f := range files {
		name, ok := f.(string)
		if !ok || obj(infos[i])["name"] != name || obj(infos[i])["download_url"] != "/download/"+id+"/"+name {
			t.Fatalf("outputs: files[%d] = %v, file_info = %v", i, f, infos[i])
		}
	}

	resp, body := getRaw(t, base+"/download/"+id+"/results/out.txt")
	if resp.StatusCode != 200 || string(body) != "args=a b,c" || !strings.Contains(resp.Header.Get("Content-Disposition"), `filename=out.txt`) {
		t.Fatalf("download: %d %q %v", resp.StatusCode, body, resp.Header)
	}

	resp, body = getRaw(t, base+"/download/"+id)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/gzip" {
		t.Fatalf("download all: %d %v", resp.StatusCode, resp.Header)
	}
	got := untar(t, body)
	if got["results/out.txt"] != "args=a b,c" || got["job.py"] != script {
		t.Fatalf("download all holds %v", keys(got))
	}
	// Sandrun deletes the job here; runbox keeps it.
	if code, _ = get(t, base+"/status/"+id); code != 200 {
		t.Fatalf("status after download all: %d", code)
	}

	for _, p := range []string{"/download/" + id + "/missing.txt", "/download/" + id + "/results/nope"} {
		if code, v = get(t, base+p); code != 404 || v["error"] != "File not found" {
			t.Fatalf("%s: %d %v", p, code, v)
		}
	}
	// Go's client sends the escaped slashes as they are; the element is
	// "..".
	for _, p := range []string{"/download/" + id + "/..%2F..%2Fetc%2Fpasswd", "/download/" + id + "/results%2F..%2F..%2Fx"} {
		if code, v = get(t, base+p); code != 403 || v["error"] != "Access denied: path traversal detected" {
			t.Fatalf("%s: %d %v", p, code, v)
		}
	}
}

func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func untar(t *testing.T, data []byte) map[string]string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string]string{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[hdr.Name] = string(b)
	}
}

type entry struct {
	name, link string
	typ        byte
	body       string
}

func tarGz(t *testing.T, entries ...entry) []byte {
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
		tw.Write([]byte(e.body))
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func zipOf(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.Create(e.name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(e.body))
	}
	zw.Close()
	return buf.Bytes()
}

// TestArchives submits a project as Sandrun's Python client packs it (a
// tar.gz with arcname ".") and as a zip: the entrypoint imports a module
// beside it.
func TestArchives(t *testing.T) {
	_, base := server(t)
	project := []entry{{name: "./", typ: tar.TypeDir}, {name: "./main.py", body: "import lib.util as u\nprint(u.f())\n"},
		{name: "./lib/", typ: tar.TypeDir}, {name: "./lib/util.py", body: "def f():\n    return 'from module'\n"}}
	tests := []struct {
		name     string
		upload   part
		manifest map[string]any
	}{
		{"tar.gz", part{field: "files", filename: "job.tar.gz", body: tarGz(t, project...)},
			map[string]any{"entrypoint": "main.py", "interpreter": "python3", "timeout": 10, "memory_mb": 256}},
		{"zip", part{field: "files", filename: "project.zip", body: zipOf(t, project[1], project[3])},
			map[string]any{"entrypoint": "main.py"}},
		{"no manifest: main.py guessed", part{field: "files", filename: "job.tar.gz", body: tarGz(t, project...)}, nil},
		{"fake tar", part{field: "files", filename: "job.tar.gz", body: []byte("----Tar\nPath: main.py\nSize: 19\n\nprint('from module')")}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parts := []part{tc.upload}
			if tc.manifest != nil {
				parts = append(parts, manifest(t, tc.manifest))
			}
			code, v := submit(t, base, parts...)
			if code != 200 {
				t.Fatalf("submit: %d %v", code, v)
			}
			id := v["job_id"].(string)
			if st := wait(t, base, id); st["status"] != "completed" {
				_, logs := get(t, base+"/logs/"+id)
				t.Fatalf("status: %v; logs %v", st, logs)
			}
			if _, logs := get(t, base+"/logs/"+id); logs["stdout"] != "from module\n" {
				t.Fatalf("logs: %v", logs)
			}
		})
	}
}

// TestRefused is what Sandrun would run, or write to its host, and runbox
// refuses with a 400 before any job exists.
func TestRefused(t *testing.T) {
	native, base := server(t)
	py := entry{name: "main.py", body: "print(1)"}
	many := []entry{py}
	for i := range 64 {
		many = append(many, entry{name: fmt.Sprintf("f%d.txt", i), body: "x"})
	}
	m := manifest(t, map[string]any{"entrypoint": "main.py"})
	tgz := func(name string, e ...entry) part { return part{field: "files", filename: name, body: tarGz(t, e...)} }
	tests := []struct {
		name  string
		parts []part
		want  string
	}{
		{"dotdot", []part{tgz("a.tar.gz", py, entry{name: "../x", body: "x"}), m}, "leaves the job directory"},
		{"absolute", []part{tgz("a.tgz", py, entry{name: "/etc/cron.d/x", body: "x"}), m}, "absolute"},
		{"symlink", []part{tgz("a.tar.gz", py, entry{name: "l", link: "/etc/shadow", typ: tar.TypeSymlink}), m}, "not a regular file"},
		{"hardlink", []part{tgz("a.tar.gz", py, entry{name: "l", link: "main.py", typ: tar.TypeLink}), m}, "not a regular file"},
		{"too many entries", []part{tgz("a.tar.gz", many...), m}, "more than 63 files"},
		{"too large", []part{tgz("a.tar.gz", py, entry{name: "big", body: strings.Repeat("x", 2<<20)}), m}, "exceed 2097152 bytes"},
		{"zip dotdot", []part{{field: "files", filename: "a.zip", body: zipOf(t, py, entry{name: "../../x", body: "x"})}, m}, "leaves the job directory"},
		{"plain file dotdot", []part{{field: "files", filename: "../../etc/cron.d/x", body: []byte("x")}, m}, "leaves the job directory"},
		{"fake tar dotdot", []part{{field: "files", filename: "job.tar.gz", body: []byte("----Tar\nPath: ../../x\n\nx")}, m}, "leaves the job directory"},
		{"no files", []part{m}, "No files uploaded"},
		{"no manifest, no guess", []part{{field: "files", filename: "job.py", body: []byte("print(1)")}}, "No entrypoint specified"},
		{"no entrypoint", []part{{field: "files", filename: "job.py", body: []byte("print(1)")}, manifest(t, map[string]any{"interpreter": "python3"})}, "No entrypoint specified"},
		{"entrypoint not uploaded", []part{tgz("a.tar.gz", py), manifest(t, map[string]any{"entrypoint": "other.py"})}, "not among the uploaded files"},
		{"unknown interpreter", []part{tgz("a.tar.gz", py), manifest(t, map[string]any{"entrypoint": "main.py", "interpreter": "ruby"})}, "Unsupported interpreter"},
		{"timeout over the maximum", []part{tgz("a.tar.gz", py), manifest(t, map[string]any{"entrypoint": "main.py", "timeout": 3600})}, "timeout must be more than 0 and at most 60 seconds"},
		{"memory over the maximum", []part{tgz("a.tar.gz", py), manifest(t, map[string]any{"entrypoint": "main.py", "memory_mb": 1 << 20})}, "memory_mb must be between 1 and 2048"},
		{"bad manifest", []part{tgz("a.tar.gz", py), {field: "manifest", body: []byte(`{"entrypoint": ["x"]`)}}, "Invalid manifest"},
		{"not an archive", []part{{field: "files", filename: "a.tar.gz", body: []byte("plain")}, m}, "not a gzip archive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, v := submit(t, base, tc.parts...)
			msg, _ := v["error"].(string)
			if code != 400 || !strings.Contains(msg, tc.want) || len(v) != 1 {
				t.Fatalf("submit: %d %v, want 400 with %q", code, v, tc.want)
			}
		})
	}
	// Over the native max_body_bytes (4 MiB in the tests): Sandrun's 413.
	code, v := submit(t, base, part{field: "files", filename: "big.bin", body: make([]byte, 5<<20)}, m)
	if msg, _ := v["error"].(string); code != 413 || !strings.Contains(msg, "Request exceeds") {
		t.Fatalf("big submit: %d %v", code, v)
	}
	// Nothing ran: the native API has no job.
	code, v = get(t, native+"/v1/jobs")
	if jobs, _ := v["jobs"].([]any); code != 200 || len(jobs) != 0 {
		t.Fatalf("native jobs after refusals: %d %v", code, v)
	}

	resp, err := http.Post(base+"/submit", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if v := decode(t, resp); resp.StatusCode != 400 || v["error"] == nil {
		t.Fatalf("JSON submit: %d %v", resp.StatusCode, v)
	}
	resp.Body.Close()
}

func TestService(t *testing.T) {
	_, base := server(t)
	if code, v := get(t, base+"/health"); code != 200 || v["status"] != "healthy" || v["worker_id"] != nil || len(v) != 2 {
		t.Fatalf("health: %d %v", code, v)
	}
	if code, v := get(t, base+"/"); code != 200 || v["service"] != "sandrun" || v["status"] != "running" {
		t.Fatalf("info: %d %v", code, v)
	}
	for _, p := range []string{"/nothing", "/submit"} {
		if code, v := get(t, base+p); code != 404 || v["error"] != "Not found" {
			t.Fatalf("GET %s: %d %v", p, code, v)
		}
	}
	for _, p := range []string{"/status/job_1700000000_1", "/logs/nope", "/outputs/x", "/download/x", "/download/x/out.txt"} {
		if code, v := get(t, base+p); code != 404 || v["error"] != "Job not found" {
			t.Fatalf("%s: %d %v", p, code, v)
		}
	}
	resp, _ := getRaw(t, base+"/health")
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("no CORS header: %v", resp.Header)
	}
}

// frames reads a stream's text frames until the server closes it.
func frames(t *testing.T, url string) []string { return framesEach(t, url, nil) }

// framesEach is frames, calling each (when set) on each frame as it
// arrives.
func framesEach(t *testing.T, url string, each func(string)) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	var out []string
	for {
		typ, b, err := c.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) == -1 {
				t.Fatalf("stream: %v after %q", err, out)
			}
			return out
		}
		if typ != websocket.MessageText {
			t.Fatalf("frame of type %v", typ)
		}
		out = append(out, string(b))
		if each != nil {
			each(string(b))
		}
	}
}

func TestStream(t *testing.T) {
	_, base := server(t)
	code, v := submit(t, base, part{field: "files", filename: "main.py",
		body: []byte("import sys, time\nprint('first', flush=True)\ntime.sleep(2)\nprint('oops', file=sys.stderr, flush=True)\nprint('second')\n")})
	if code != 200 {
		t.Fatalf("submit: %d %v", code, v)
	}
	id := v["job_id"].(string)
	// The output comes as it is written: "first" arrives while the job
	// still runs (Sandrun sends it after the exit).
	sawFirst := false
	live := strings.Join(framesEach(t, base+"/stream/"+id, func(f string) {
		if f == "first\n" {
			sawFirst = true
			if _, st := get(t, base+"/status/"+id); st["status"] != "running" {
				t.Errorf("first output frame arrived with the job %v", st["status"])
			}
		}
	}), "")
	if !sawFirst {
		t.Errorf("no frame was exactly the first line: %q", live)
	}
	for _, want := range []string{"first\n", "[STDERR]\noops\n", "second\n", "[DONE] Job completed (exit=0, CPU="} {
		if !strings.Contains(live, want) {
			t.Fatalf("live stream %q lacks %q", live, want)
		}
	}
	ended := frames(t, base+"/stream/"+id)
	if len(ended) != 3 || ended[0] != "first\nsecond\n" || ended[1] != "[STDERR]\noops\n" || !strings.HasPrefix(ended[2], "[DONE] Job completed") {
		t.Fatalf("ended stream: %q", ended)
	}
	if got := frames(t, base+"/stream/nope"); len(got) != 1 || got[0] != "[ERROR] Job not found: nope\n" {
		t.Fatalf("unknown job: %q", got)
	}
	if code, v := get(t, base+"/stream/"+id); code != 400 || v["error"] == nil {
		t.Fatalf("stream without upgrade: %d %v", code, v)
	}
}
