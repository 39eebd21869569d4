package judge0_test

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/compat"
	"github.com/runbox-dev/runbox/internal/compat/compattest"
	"github.com/runbox-dev/runbox/internal/compat/judge0"
	"github.com/runbox-dev/runbox/internal/job"
	"github.com/runbox-dev/runbox/internal/testwait"
)

func TestMain(m *testing.M) {
	compattest.Formats["judge0"] = job.Format{Method: http.MethodPut, Body: judge0.CallbackBody}
	compattest.Main(m)
}

// server serves Judge0's API at /judge0 of a native API with the test
// configuration.
func server(t *testing.T) string {
	t.Helper()
	return compattest.Server(t, compattest.Config(), "/judge0", func(n *compat.Native) http.Handler { return judge0.New(n) }) + "/judge0"
}

// do sends body (JSON unless it is a string) and decodes the JSON answer.
func do(t *testing.T, method, url string, body any) (int, any) {
	t.Helper()
	var rd io.Reader = http.NoBody
	if body != nil {
		b, ok := body.(string)
		if !ok {
			j, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			b = string(j)
		}
		rd = strings.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: answer %d is not JSON: %q", method, url, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

func obj(t *testing.T, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("answer %v is not an object", v)
	}
	return m
}

func statusID(t *testing.T, sub map[string]any) int {
	t.Helper()
	st, ok := sub["status"].(map[string]any)
	if !ok {
		t.Fatalf("no status in %v", sub)
	}
	return int(st["id"].(float64))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestInformation(t *testing.T) {
	base := server(t)
	code, v := do(t, "GET", base+"/languages", nil)
	langs, _ := v.([]any)
	if code != 200 || len(langs) == 0 {
		t.Fatalf("languages: %d %v", code, v)
	}
	var python string
	for _, l := range langs {
		m := obj(t, l)
		if len(m) != 2 {
			t.Errorf("language %v has fields beyond id and name", m)
		}
		if m["id"] == float64(71) {
			python = m["name"].(string)
		}
	}
	if !strings.HasPrefix(python, "Python (3.") {
		t.Fatalf("language 71 is %q", python)
	}
	code, v = do(t, "GET", base+"/languages/71", nil)
	if m := obj(t, v); code != 200 || m["source_file"] != "main.py" || m["is_archived"] != false || m["compile_cmd"] != nil || m["name"] != python {
		t.Fatalf("languages/71: %d %v", code, v)
	}
	for _, id := range []string{"89", "x", "-1"} {
		if code, v = do(t, "GET", base+"/languages/"+id, nil); code != 404 || obj(t, v)["error"] == nil {
			t.Fatalf("languages/%s: %d %v", id, code, v)
		}
	}
	code, v = do(t, "GET", base+"/statuses", nil)
	sts, _ := v.([]any)
	if code != 200 || len(sts) != 14 || obj(t, sts[10])["description"] != "Runtime Error (NZEC)" {
		t.Fatalf("statuses: %d %v", code, v)
	}
	code, v = do(t, "GET", base+"/about", nil)
	if code != 200 || obj(t, v)["version"] != "test" {
		t.Fatalf("about: %d %v", code, v)
	}
	code, v = do(t, "GET", base+"/config_info", nil)
	c := obj(t, v)
	if code != 200 || c["max_cpu_time_limit"] != float64(60) || c["max_memory_limit"] != float64(2<<20) || c["enable_network"] != false || c["max_queue_size"] != float64(64) {
		t.Fatalf("config_info: %d %v", code, v)
	}
	if code, v = do(t, "DELETE", base+"/statuses", nil); code != 405 {
		t.Fatalf("DELETE statuses: %d %v", code, v)
	}
	if code, v = do(t, "GET", base+"/nothing", nil); code != 404 {
		t.Fatalf("GET nothing: %d %v", code, v)
	}
}

func makeZip(t *testing.T, entries map[string]string, mode fs.FileMode) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range entries {
		h := &zip.FileHeader{Name: name, Method: zip.Deflate}
		if mode != 0 {
			h.SetMode(mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

// TestSubmissionsWait is Judge0's wait=true submissions, request →
// status and output, over the real listener and jail.
func TestSubmissionsWait(t *testing.T) {
	base := server(t)
	_, v := do(t, "GET", base+"/languages", nil)
	haveC := strings.Contains(fmt.Sprint(v), "id:50 ")
	py := func(src string, extra ...any) map[string]any {
		m := map[string]any{"language_id": 71, "source_code": src}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i].(string)] = extra[i+1]
		}
		return m
	}
	many := map[string]string{}
	for i := range 70 {
		many[fmt.Sprintf("f%d", i)] = "x"
	}
	for _, tc := range []struct {
		name   string
		query  string
		body   any
		skip   bool
		code   int
		status int            // Judge0 status id, when 201
		want   map[string]any // fields of the answer
		keys   []string       // the answer's exact keys, when set
	}{
		{name: "accepted", body: py("print(input()*2)", "stdin", "ab", "expected_output", "abab\n  \n"), code: 201, status: 3,
			want: map[string]any{"stdout": "abab\n", "stderr": nil, "compile_output": nil},
			keys: []string{"compile_output", "memory", "message", "status", "stderr", "stdout", "time", "token"}},
		{name: "no expected output", body: py("import sys; print(sys.argv[1:])", "command_line_arguments", `a "b c"`), code: 201, status: 3,
			want: map[string]any{"stdout": "['a', 'b c']\n"}},
		{name: "wrong answer", body: py("print(1)", "expected_output", "2"), code: 201, status: 4, want: map[string]any{"stdout": "1\n"}},
		{name: "time limit", body: py("while True: pass", "cpu_time_limit", 0.5), code: 201, status: 5},
		{name: "compilation error", skip: !haveC, body: map[string]any{"language_id": 50, "source_code": "int main( {"}, code: 201, status: 6,
			want: map[string]any{"stdout": nil}},
		{name: "nzec", query: "&fields=status,exit_code,stderr", body: py("import sys; sys.stderr.write('bad'); sys.exit(3)"), code: 201, status: 11,
			want: map[string]any{"exit_code": float64(3), "stderr": "bad"}, keys: []string{"exit_code", "status", "stderr"}},
		{name: "sigsegv", query: "&fields=status,exit_signal", body: py("import ctypes; ctypes.string_at(0)"), code: 201, status: 7,
			want: map[string]any{"exit_signal": float64(11)}},
		{name: "base64", query: "&base64_encoded=true&fields=stdout,stderr,status",
			body: py(b64("import sys; sys.stdout.buffer.write(b'\\xff' + sys.stdin.buffer.read())"), "stdin", b64("é")), code: 201, status: 3,
			want: map[string]any{"stdout": base64.StdEncoding.EncodeToString([]byte("\xffé")), "stderr": nil}},
		{name: "not utf-8 without base64", body: py("import sys; sys.stdout.buffer.write(b'\\xff')"), code: 400},
		{name: "bad base64", query: "&base64_encoded=true", body: py("print(1)"), code: 400},
		{name: "redirect: one descriptor, in the order written", query: "&fields=stdout,stderr",
			body: py("import sys; print('o', flush=True); sys.stderr.write('e\\n'); print('p')", "redirect_stderr_to_stdout", true), code: 201,
			want: map[string]any{"stdout": "o\ne\np\n", "stderr": nil}},
		{name: "all fields", query: "&fields=*", body: py("print(1)"), code: 201, status: 3,
			want: map[string]any{"language_id": float64(71), "exit_code": float64(0), "exit_signal": nil}},
		{name: "unknown field", query: "&fields=stdout,nope", body: py("print(1)"), code: 400},
		{name: "network", body: py("print(1)", "enable_network", true), code: 422,
			want: map[string]any{"enable_network": []any{"cannot be true: runbox gives programs no network"}}},
		{name: "above maxima", body: py("print(1)", "cpu_time_limit", 61, "memory_limit", 3<<20, "wall_time_limit", "120"), code: 422,
			want: map[string]any{"cpu_time_limit": []any{"must be less than or equal to 60"}, "memory_limit": []any{"must be less than or equal to 2097152"},
				"wall_time_limit": []any{"must be less than or equal to 60"}}},
		{name: "additional files", body: py("import helper; print(helper.X)", "additional_files", makeZip(t, map[string]string{"helper.py": "X = 42\n", "data/x.txt": "x"}, 0)),
			code: 201, status: 3, want: map[string]any{"stdout": "42\n"}},
		{name: "zip dot dot", body: py("print(1)", "additional_files", makeZip(t, map[string]string{"../x": "x"}, 0)), code: 422, want: map[string]any{"additional_files": []any{`entry "../x" leaves the workspace (..)`}}},
		{name: "zip absolute", body: py("print(1)", "additional_files", makeZip(t, map[string]string{"/abs": "x"}, 0)), code: 422, want: map[string]any{"additional_files": []any{`entry "/abs" is an absolute path`}}},
		{name: "zip symlink", body: py("print(1)", "additional_files", makeZip(t, map[string]string{"l": "/etc/passwd"}, fs.ModeSymlink|0o777)), code: 422, want: map[string]any{"additional_files": []any{`entry "l" is not a regular file (symlinks and devices are refused)`}}},
		{name: "zip too many", body: py("print(1)", "additional_files", makeZip(t, many, 0)), code: 422, want: map[string]any{"additional_files": []any{`has 70 files; at most 63 are allowed`}}},
		{name: "zip bomb", body: py("print(1)", "additional_files", makeZip(t, map[string]string{"z": strings.Repeat("\x00", 3<<20)}, 0)), code: 422, want: map[string]any{"additional_files": []any{`extracts to more than 2097152 bytes`}}},
		{name: "blank", body: map[string]any{}, code: 422, want: map[string]any{"source_code": []any{"can't be blank"}, "language_id": []any{"can't be blank"}}},
		{name: "not json", body: "{", code: 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.skip {
				t.Skip("the environment is not available")
			}
			code, v := do(t, "POST", base+"/submissions?wait=true"+tc.query, tc.body)
			if code != tc.code {
				t.Fatalf("answer %d %v, want %d", code, v, tc.code)
			}
			m := obj(t, v)
			if tc.code >= 400 && tc.code != 422 && m["error"] == nil {
				t.Fatalf("error answer %v has no error", m)
			}
			if tc.status != 0 {
				if got := statusID(t, m); got != tc.status {
					t.Fatalf("status %d, want %d: %v", got, tc.status, m)
				}
			}
			for k, want := range tc.want {
				if fmt.Sprint(m[k]) != fmt.Sprint(want) {
					t.Errorf("%s = %#v, want %#v", k, m[k], want)
				}
			}
			if tc.keys != nil {
				var keys []string
				for k := range m {
					keys = append(keys, k)
				}
				if fmt.Sprint(sorted(keys)) != fmt.Sprint(tc.keys) {
					t.Errorf("keys %v, want %v", sorted(keys), tc.keys)
				}
			}
		})
	}
}

func sorted(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

// eventually polls until a condition holds (testwait.Eventually).
var eventually = testwait.Eventually

// TestSubmissionsAsync is Judge0's default: a token, then GET until done;
// and the batch routes.
func TestSubmissionsAsync(t *testing.T) {
	base := server(t)
	code, v := do(t, "POST", base+"/submissions", map[string]any{"language_id": 71, "source_code": "print(input())", "stdin": "hi", "expected_output": "hi"})
	token, _ := obj(t, v)["token"].(string)
	if code != 201 || token == "" || len(obj(t, v)) != 1 {
		t.Fatalf("submit: %d %v", code, v)
	}
	var done map[string]any
	eventually(t, 20*time.Second, func() error {
		code, v := do(t, "GET", base+"/submissions/"+token+"?fields=*", nil)
		if code != 200 {
			return fmt.Errorf("get: %d %v", code, v)
		}
		done = obj(t, v)
		if id := statusID(t, done); id == 1 || id == 2 {
			return fmt.Errorf("still %v", done["status"])
		}
		return nil
	})
	if statusID(t, done) != 3 || done["stdout"] != "hi\n" || done["token"] != token || done["finished_at"] == nil {
		t.Fatalf("done: %v", done)
	}
	if code, v := do(t, "GET", base+"/submissions/nope", nil); code != 404 {
		t.Fatalf("unknown token: %d %v", code, v)
	}
	if code, v := do(t, "POST", base+"/submissions", map[string]any{"language_id": 71, "source_code": "1", "callback_url": "http://127.0.0.1:1/cb"}); code != 422 || obj(t, v)["callback_url"] == nil {
		t.Fatalf("loopback callback: %d %v", code, v)
	}

	code, v = do(t, "POST", base+"/submissions/batch?base64_encoded=true", map[string]any{"submissions": []any{
		map[string]any{"language_id": 71, "source_code": b64("print(1)")},
		map[string]any{"language_id": 71, "source_code": b64("print(2)"), "enable_network": true},
		map[string]any{"language_id": 71, "source_code": b64("import sys; sys.exit(4)")},
	}})
	items, _ := v.([]any)
	if code != 201 || len(items) != 3 || obj(t, items[1])["enable_network"] == nil {
		t.Fatalf("batch submit: %d %v", code, v)
	}
	tokens := obj(t, items[0])["token"].(string) + ",nope," + obj(t, items[2])["token"].(string)
	eventually(t, 20*time.Second, func() error {
		code, v := do(t, "GET", base+"/submissions/batch?base64_encoded=true&fields=status,stdout&tokens="+tokens, nil)
		subs, _ := obj(t, v)["submissions"].([]any)
		if code != 200 || len(subs) != 3 || subs[1] != nil {
			return fmt.Errorf("batch get: %d %v", code, v)
		}
		a, b := obj(t, subs[0]), obj(t, subs[2])
		if statusID(t, a) != 3 || statusID(t, b) != 11 {
			return fmt.Errorf("batch get: %v", v)
		}
		if a["stdout"] != b64("1\n") {
			return fmt.Errorf("stdout %v", a["stdout"])
		}
		return nil
	})
	big := map[string]any{"submissions": make([]any, 21)}
	if code, v := do(t, "POST", base+"/submissions/batch", big); code != 400 {
		t.Fatalf("batch of 21: %d %v", code, v)
	}
}

// TestCompileOutput: a compiler's complaint is Judge0's compile_output.
func TestCompileOutput(t *testing.T) {
	base := server(t)
	if _, v := do(t, "GET", base+"/languages", nil); !strings.Contains(fmt.Sprint(v), "id:50 ") {
		t.Skip("c is not available")
	}
	code, v := do(t, "POST", base+"/submissions?wait=true&fields=*", map[string]any{"language_id": 50, "source_code": "int main( {"})
	m := obj(t, v)
	out, _ := m["compile_output"].(string)
	if code != 201 || statusID(t, m) != 6 || !strings.Contains(out, "error") || m["stdout"] != nil {
		t.Fatalf("compile error: %d %v", code, v)
	}
}

// TestBadInput: whatever a client sends, the answer is Judge0's error
// format with a 4xx, never a 500.
func TestBadInput(t *testing.T) {
	base := server(t)
	long := strings.Repeat("a", 100)
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/submissions", "null"},
		{"POST", "/submissions", `"text"`},
		{"POST", "/submissions", `{"language_id":1e300,"source_code":"x"}`},
		{"POST", "/submissions", `{"language_id":"71","source_code":5}`},
		{"POST", "/submissions", `{"language_id":71,"source_code":"x","stdin":{"a":1}}`},
		{"POST", "/submissions", `{"language_id":71,"source_code":"x","additional_files":"!!"}`},
		{"POST", "/submissions", `{"language_id":71,"source_code":"x","max_file_size":1e300}`},
		{"POST", "/submissions?wait=maybe", `{}`},
		{"POST", "/submissions?base64_encoded=perhaps", `{}`},
		{"POST", "/submissions?fields=,", `{}`},
		{"POST", "/submissions/batch", `{"submissions":"x"}`},
		{"POST", "/submissions/batch", `{"submissions":[]}`},
		{"POST", "/submissions/batch", `{"submissions":[null, 1, "x"]}`},
		{"GET", "/submissions/batch?tokens=", ""},
		{"GET", "/submissions/" + long, ""},
		{"GET", "/submissions/a%2Fb", ""},
		{"PUT", "/submissions/batch", ""},
		{"POST", "/languages", ""},
		{"GET", "/languages/99999999999999999999", ""},
	} {
		t.Run(tc.method+" "+tc.path+" "+tc.body, func(t *testing.T) {
			code, v := do(t, tc.method, base+tc.path, tc.body)
			if code < 400 && code != 201 || code >= 500 {
				t.Fatalf("answer %d %v", code, v)
			}
		})
	}
}

// A submission's callback_url gets Judge0's own callback: a PUT of the
// finished submission (default fields, base64), through runbox's signed,
// SSRF-checked delivery.
func TestCallback(t *testing.T) {
	got := make(chan *http.Request, 4)
	bodies := make(chan []byte, 4)
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r
		bodies <- b
		w.WriteHeader(http.StatusOK)
	}))
	defer rc.Close()
	base := compattest.Server(t, compattest.Config(), "/judge0", func(n *compat.Native) http.Handler { return judge0.New(n) }, "127.0.0.0/8") + "/judge0"
	code, v := do(t, "POST", base+"/submissions", map[string]any{"language_id": 71, "source_code": "print(6*7)", "callback_url": rc.URL + "/cb"})
	if code != http.StatusCreated {
		t.Fatalf("submit: %d %v", code, v)
	}
	token := obj(t, v)["token"]
	select {
	case r := <-got:
		b := <-bodies
		var sub map[string]any
		if err := json.Unmarshal(b, &sub); err != nil {
			t.Fatal(err)
		}
		out, _ := base64.StdEncoding.DecodeString(fmt.Sprint(sub["stdout"]))
		if r.Method != http.MethodPut || r.URL.Path != "/cb" || sub["token"] != token || string(out) != "42\n" ||
			fmt.Sprint(sub["status"]) != "map[description:Accepted id:3]" || r.Header.Get("webhook-id") == "" {
			t.Fatalf("callback %s %s %v: %s", r.Method, r.URL.Path, r.Header, b)
		}
	case <-time.After(time.Minute):
		t.Fatal("no callback within a minute")
	}
}
