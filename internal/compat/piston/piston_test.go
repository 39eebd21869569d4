package piston

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/runbox-dev/runbox/internal/compat"
)

// fakeNative is the native API as the adapter sees it: environments,
// info, and a /v1/run that records its body and answers what the test
// says.
type fakeNative struct {
	envs string
	mu   sync.Mutex
	got  []byte
	run  func(w http.ResponseWriter)
}

const fakeEnvs = `[
	{"name":"python","version":"Python 3.11.2","aliases":["py","python3"],"compiled":false,"available":true},
	{"name":"c","version":"gcc (Debian 12.2.0-14+deb12u1) 12.2.0","aliases":["gcc"],"compiled":true,"available":true},
	{"name":"cobol","version":"","aliases":[],"compiled":true,"available":false}]`

func (f *fakeNative) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/environments":
		_, _ = io.WriteString(w, f.envs)
	case "/v1/info":
		_, _ = io.WriteString(w, `{"maxima":{"wall_time_ms":60000,"cpu_time_ms":30000,"memory_bytes":1073741824},"max_body_bytes":65536}`)
	case "/v1/run":
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.got = b
		f.mu.Unlock()
		if f.run != nil {
			f.run(w)
			return
		}
		_, _ = io.WriteString(w, `{"language":"python","version":"Python 3.11.2","compile":null,
			"run":{"status":"ok","exit_code":0,"signal":null,"message":"","stdout":"1\n","stderr":"","wall_time_ms":12,"cpu_time_ms":10,"memory_bytes":4096}}`)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeNative) body() map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.got == nil {
		return nil
	}
	var m map[string]any
	_ = json.Unmarshal(f.got, &m)
	return m
}

func newFake(envs string) (*fakeNative, http.Handler) {
	f := &fakeNative{envs: envs}
	return f, New(compat.NewNative(f, 1<<20))
}

// call sends a request to h and decodes its JSON answer.
func call(t *testing.T, h http.Handler, method, path, contentType, body string) (*httptest.ResponseRecorder, any) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var v any
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("%s %s: answer is not JSON: %d %q", method, path, w.Code, w.Body)
	}
	return w, v
}

func jsonOf(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad JSON in test: %v: %s", err, s)
	}
	return v
}

// Piston's execute requests become these native /v1/run bodies.
func TestExecuteRequest(t *testing.T) {
	for _, tc := range []struct {
		name, in, native string
	}{
		{"unnamed file, stdin gets its newline",
			`{"language":"python","version":"*","files":[{"content":"print(1)"}]}`,
			`{"language":"python","files":[{"name":"file0.code","content":"print(1)"}],"stdin":"\n"}`},
		{"alias, version prefix, stdin already ending in a newline, args",
			`{"language":"py","version":"3.11","files":[{"name":"a.py","content":"x"}],"stdin":"in\n","args":["1","2"]}`,
			`{"language":"python","files":[{"name":"a.py","content":"x"}],"stdin":"in\n","args":["1","2"]}`},
		{"hex becomes base64; base64 is read as Node does; the main file is the first utf8 one",
			`{"language":"python","version":"3.11.2","files":[{"name":"d.bin","encoding":"hex","content":"6869"},
				{"encoding":"base64","content":"aGk_"},{"content":"main"}],"stdin":"x"}`,
			`{"language":"python","files":[{"name":"d.bin","content":"aGk=","encoding":"base64"},
				{"name":"file1.code","content":"aGk/","encoding":"base64"},{"name":"file2.code","content":"main"}],
				"main":"file2.code","stdin":"x\n"}`},
		{"an unknown encoding is utf8",
			`{"language":"python","version":"*","files":[{"content":"x","encoding":"latin1"}]}`,
			`{"language":"python","files":[{"name":"file0.code","content":"x"}],"stdin":"\n"}`},
		{"limits: 0, null and -1 take the defaults, fractions round up",
			`{"language":"c","version":"12","files":[{"name":"main.c","content":"x"}],"run_timeout":5000,"run_cpu_time":2500.5,
				"run_memory_limit":-1,"compile_timeout":0,"compile_cpu_time":null,"compile_memory_limit":268435456}`,
			`{"language":"c","files":[{"name":"main.c","content":"x"}],"stdin":"\n",
				"limits":{"wall_time_ms":5000,"cpu_time_ms":2501},"compile_limits":{"memory_bytes":268435456}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, h := newFake(fakeEnvs)
			w, _ := call(t, h, "POST", "/api/v2/execute", "application/json", tc.in)
			if w.Code != 200 {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if got, want := f.body(), jsonOf(t, tc.native); !reflect.DeepEqual(any(got), want) {
				t.Errorf("native body\n got %v\nwant %v", got, want)
			}
		})
	}
}

// When the native API says an environment's source file name, unnamed
// files follow it: the main file takes it, the others its extension.
func TestExecuteUnnamedWithSource(t *testing.T) {
	f, h := newFake(`[{"name":"c","version":"gcc 12.2.0","aliases":[],"compiled":true,"available":true,"source":"main.c"}]`)
	w, _ := call(t, h, "POST", "/api/v2/execute", "application/json",
		`{"language":"c","version":"*","files":[{"content":"a"},{"content":"b"},{"name":"x.h","content":"c"}]}`)
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	want := jsonOf(t, `[{"name":"main.c","content":"a"},{"name":"file1.code.c","content":"b"},{"name":"x.h","content":"c"}]`)
	if got := f.body()["files"]; !reflect.DeepEqual(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
}

// Bad requests get Piston's 400 {message} (its own wording where Piston
// has one) and never reach the native run.
func TestExecuteBadRequest(t *testing.T) {
	for _, tc := range []struct {
		name, contentType, in string
		status                int
		message               string
	}{
		{"not JSON", "application/x-www-form-urlencoded", `language=python`, 415, "requests must be of type application/json"},
		{"no content type", "", `{}`, 415, "requests must be of type application/json"},
		{"bad JSON", "application/json", `{"language":`, 400, "the body is not valid JSON: unexpected end of JSON input"},
		{"not an object", "application/json", `[1]`, 400, "the body must be a JSON object"},
		{"no language", "application/json", `{"version":"*","files":[]}`, 400, "language is required as a string"},
		{"version not a string", "application/json", `{"language":"python","version":3,"files":[]}`, 400, "version is required as a string"},
		{"files not an array", "application/json", `{"language":"python","version":"*","files":{}}`, 400, "files is required as an array"},
		{"a file without content", "application/json", `{"language":"python","version":"*","files":[{"content":""},{"name":"a"}]}`, 400,
			"files[1].content is required as a string"},
		{"unknown language", "application/json", `{"language":"intercal","version":"*","files":[{"content":""}]}`, 400, "intercal-* runtime is unknown"},
		{"unknown version", "application/json", `{"language":"python","version":"2.7","files":[{"content":""}]}`, 400, "python-2.7 runtime is unknown"},
		{"no utf8 file", "application/json", `{"language":"python","version":"*","files":[{"content":"AA==","encoding":"base64"}]}`, 400,
			"files must include at least one utf8 encoded file"},
		{"bad hex", "application/json", `{"language":"python","version":"*","files":[{"content":"x"},{"content":"zz","encoding":"hex"}]}`, 400,
			"files[1].content is not valid hex"},
		{"name not a string", "application/json", `{"language":"python","version":"*","files":[{"name":1,"content":""}]}`, 400,
			"files[0].name must be a string"},
		{"limit above the maximum", "application/json", `{"language":"python","version":"*","files":[{"content":""}],"run_timeout":60001}`, 400,
			"run_timeout cannot exceed the configured limit of 60000"},
		{"memory above the maximum", "application/json", `{"language":"python","version":"*","files":[{"content":""}],"compile_memory_limit":1e12}`, 400,
			"compile_memory_limit cannot exceed the configured limit of 1073741824"},
		{"limit not a number", "application/json", `{"language":"python","version":"*","files":[{"content":""}],"run_cpu_time":"5"}`, 400,
			"If specified, run_cpu_time must be a number"},
		{"negative limit", "application/json", `{"language":"python","version":"*","files":[{"content":""}],"run_timeout":-5}`, 400,
			"run_timeout must be non-negative"},
		{"stdin not a string", "application/json", `{"language":"python","version":"*","files":[{"content":""}],"stdin":5}`, 400, "stdin must be a string"},
		{"args not strings", "application/json", `{"language":"python","version":"*","files":[{"content":""}],"args":[1]}`, 400, "args[0] must be a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, h := newFake(fakeEnvs)
			w, v := call(t, h, "POST", "/api/v2/execute", tc.contentType, tc.in)
			if w.Code != tc.status || !reflect.DeepEqual(v, map[string]any{"message": tc.message}) {
				t.Errorf("got %d %s, want %d %q", w.Code, w.Body, tc.status, tc.message)
			}
			if f.body() != nil {
				t.Errorf("the native run was called")
			}
		})
	}
}

// The native API's refusals become Piston's: 400 naming the field as
// Piston names it, busy answers with their Retry-After, runbox's own
// failures 500 with the request id.
func TestExecuteNativeProblems(t *testing.T) {
	const req = `{"language":"python","version":"*","files":[{"content":""}]}`
	for _, tc := range []struct {
		name, problem string
		status        int
		retryAfter    string
		message       string
	}{
		{"422 on a file", `{"status":422,"title":"Unprocessable Entity","detail":"invalid request","errors":[{"location":"body.files[0].name","message":"must not contain .."}]}`,
			400, "", "files[0].name: must not contain .."},
		{"422 on a limit", `{"status":422,"detail":"x","errors":[{"location":"body.limits.memory_bytes","message":"must be at least 1048576"}]}`,
			400, "", "run_memory_limit: must be at least 1048576"},
		{"413", `{"status":413,"title":"Request Entity Too Large","detail":"the body is larger than 65536 bytes"}`, 413, "", "the body is larger than 65536 bytes"},
		{"429", `{"status":429,"detail":"all boxes are busy and the queue is full; retry later"}`, 429, "1", "all boxes are busy and the queue is full; retry later"},
		{"503", `{"status":503,"detail":"unavailable"}`, 503, "5", "unavailable"},
		{"500", `{"status":500,"detail":"internal error"}`, 500, "", "runbox failed; request id "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, h := newFake(fakeEnvs)
			f.run = func(w http.ResponseWriter) {
				var p struct{ Status int }
				_ = json.Unmarshal([]byte(tc.problem), &p)
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(p.Status)
				_, _ = io.WriteString(w, tc.problem)
			}
			w, v := call(t, h, "POST", "/api/v2/execute", "text/plain;charset=UTF-8", req)
			if w.Code != tc.status || w.Header().Get("Retry-After") != tc.retryAfter || !reflect.DeepEqual(v, map[string]any{"message": tc.message}) {
				t.Errorf("got %d (Retry-After %q) %s, want %d %q", w.Code, w.Header().Get("Retry-After"), w.Body, tc.status, tc.message)
			}
		})
	}
}

// Native results become Piston's stages.
func TestExecuteResponse(t *testing.T) {
	for _, tc := range []struct {
		name, native, piston string
	}{
		{"ok", `{"language":"python","version":"Python 3.11.2","compile":null,"run":{"status":"ok","exit_code":0,"signal":null,"message":"",
				"stdout":"out\n","stderr":"err\n","wall_time_ms":12,"cpu_time_ms":10,"memory_bytes":4096}}`,
			`{"language":"python","version":"3.11.2","run":{"stdout":"out\n","stderr":"err\n","output":"out\nerr\n","code":0,"signal":null,
				"message":null,"status":null,"cpu_time":10,"wall_time":12,"memory":4096}}`},
		{"runtime error", `{"language":"python","version":"Python 3.11.2","run":{"status":"runtime_error","exit_code":3,"stdout":"","stderr":""}}`,
			`{"language":"python","version":"3.11.2","run":{"stdout":"","stderr":"","output":"","code":3,"signal":null,
				"message":"Exited with error status 3","status":"RE","cpu_time":0,"wall_time":0,"memory":0}}`},
		{"signaled", `{"language":"python","version":"Python 3.11.2","run":{"status":"signaled","exit_code":139,"signal":"SIGSEGV"}}`,
			`{"language":"python","version":"3.11.2","run":{"stdout":"","stderr":"","output":"","code":null,"signal":"SIGSEGV",
				"message":"Caught fatal signal 11","status":"SG","cpu_time":0,"wall_time":0,"memory":0}}`},
		{"time limit", `{"language":"python","version":"Python 3.11.2","run":{"status":"time_limit","exit_code":137,"signal":"SIGKILL",
				"message":"wall-clock time limit of 1s exceeded"}}`,
			`{"language":"python","version":"3.11.2","run":{"stdout":"","stderr":"","output":"","code":null,"signal":"SIGKILL",
				"message":"wall-clock time limit of 1s exceeded","status":"TO","cpu_time":0,"wall_time":0,"memory":0}}`},
		{"memory limit", `{"language":"python","version":"Python 3.11.2","run":{"status":"memory_limit","message":"memory limit exceeded"}}`,
			`{"language":"python","version":"3.11.2","run":{"stdout":"","stderr":"","output":"","code":null,"signal":"SIGKILL",
				"message":"memory limit exceeded","status":"SG","cpu_time":0,"wall_time":0,"memory":0}}`},
		{"stdout limit", `{"language":"python","version":"Python 3.11.2","run":{"status":"output_limit","stdout_truncated":true}}`,
			`{"language":"python","version":"3.11.2","run":{"stdout":"","stderr":"","output":"","code":null,"signal":"SIGKILL",
				"message":"stdout length exceeded","status":"OL","cpu_time":0,"wall_time":0,"memory":0}}`},
		{"stderr limit", `{"language":"python","version":"Python 3.11.2","run":{"status":"output_limit","stderr_truncated":true}}`,
			`{"language":"python","version":"3.11.2","run":{"stdout":"","stderr":"","output":"","code":null,"signal":"SIGKILL",
				"message":"stderr length exceeded","status":"EL","cpu_time":0,"wall_time":0,"memory":0}}`},
		{"internal error", `{"language":"python","version":"Python 3.11.2","run":{"status":"internal_error","message":"box failed"}}`,
			`{"language":"python","version":"3.11.2","run":{"stdout":"","stderr":"","output":"","code":null,"signal":null,
				"message":"box failed","status":"XX","cpu_time":0,"wall_time":0,"memory":0}}`},
		{"compile error is copied into run", `{"language":"c","version":"gcc 12.2.0","compile":{"status":"runtime_error","exit_code":1,"stderr":"e"},"run":null}`,
			`{"language":"c","version":"12.2.0",
				"compile":{"stdout":"","stderr":"e","output":"e","code":1,"signal":null,"message":"Exited with error status 1","status":"RE","cpu_time":0,"wall_time":0,"memory":0},
				"run":{"stdout":"","stderr":"e","output":"e","code":1,"signal":null,"message":"Exited with error status 1","status":"RE","cpu_time":0,"wall_time":0,"memory":0}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, h := newFake(fakeEnvs)
			f.run = func(w http.ResponseWriter) { _, _ = io.WriteString(w, tc.native) }
			w, v := call(t, h, "POST", "/api/v2/execute", "application/json", `{"language":"python","version":"*","files":[{"content":""}]}`)
			if want := jsonOf(t, tc.piston); w.Code != 200 || !reflect.DeepEqual(v, want) {
				t.Errorf("got %d %s\nwant %s", w.Code, w.Body, tc.piston)
			}
		})
	}
}

// The other routes, with Piston's shapes and Piston's 404.
func TestRoutes(t *testing.T) {
	_, h := newFake(fakeEnvs)
	for _, tc := range []struct {
		method, path, contentType string
		status                    int
		body                      string
	}{
		{"GET", "/api/v2/runtimes", "", 200, `[{"language":"python","version":"3.11.2","aliases":["py","python3"]},
			{"language":"c","version":"12.2.0","aliases":["gcc"]}]`},
		{"GET", "/api/v2/packages", "", 200, `[{"language":"python","language_version":"3.11.2","installed":true},
			{"language":"c","language_version":"12.2.0","installed":true},{"language":"cobol","language_version":"0.0.0","installed":false}]`},
		{"POST", "/api/v2/packages", "application/json", 501,
			`{"message":"runbox does not install or uninstall packages over the API: its environments are configured by its operator (see GET /api/v2/runtimes)"}`},
		{"DELETE", "/api/v2/packages", "application/json", 501,
			`{"message":"runbox does not install or uninstall packages over the API: its environments are configured by its operator (see GET /api/v2/runtimes)"}`},
		{"POST", "/api/v2/packages", "text/html", 415, `{"message":"requests must be of type application/json"}`},
		{"GET", "/api/v2/connect", "", 501, `{"message":"this server does not serve /api/v2/connect"}`},
		{"GET", "/api/v2/execute", "", 404, `{"message":"Not Found"}`},
		{"POST", "/api/v2/runtimes", "application/json", 404, `{"message":"Not Found"}`},
		{"GET", "/api/v3/runtimes", "", 404, `{"message":"Not Found"}`},
		{"GET", "/", "", 200, `{"message":"runbox, serving the Piston v2 API"}`},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			w, v := call(t, h, tc.method, tc.path, tc.contentType, `{"language":"python","version":"3.11.2"}`)
			if want := jsonOf(t, tc.body); w.Code != tc.status || !reflect.DeepEqual(v, want) {
				t.Errorf("got %d %s, want %d %s", w.Code, w.Body, tc.status, tc.body)
			}
		})
	}
}

func TestSemver(t *testing.T) {
	for text, want := range map[string]string{
		"Python 3.11.2":                                             "3.11.2",
		"gcc (Debian 12.2.0-14+deb12u1) 12.2.0":                     "12.2.0",
		"GNU bash, version 5.2.15(1)-release (x86_64-pc-linux-gnu)": "5.2.15",
		"go version go1.26.8 linux/amd64":                           "1.26.8",
		"javac 17.0.21.1":                                           "17.0.21",
		"v20.20.2":                                                  "20.20.2",
		"rustc 1.63.0":                                              "1.63.0",
		"perl v5.36.0":                                              "5.36.0",
		"This is perl 5, version 36, subversion 0 (v5.36.0)":        "5.36.0",
		"tool 2.1":                                                  "2.1.0",
		"tool 7":                                                    "7.0.0",
		"tool 07.010":                                               "7.10.0",
		"":                                                          "0.0.0",
	} {
		if got := semver(text); got != want {
			t.Errorf("semver(%q) = %q, want %q", text, got, want)
		}
	}
}

func TestMatches(t *testing.T) {
	for _, tc := range []struct {
		sel  string
		want bool
	}{
		{"*", true}, {"x", true}, {"3", true}, {"3.11", true}, {"3.11.2", true}, {"v3.11.2", true}, {"=3.11.2", true},
		{"3.x", true}, {"3.11.*", true}, {"3.X.X", true}, {"^3.10", true}, {"~3.11.1", true}, {">=3.8", true}, {">3.10", true},
		{"<=3.11", true}, {"<4", true}, {" 3.11.2 ", true},
		{"2", false}, {"3.10", false}, {"3.11.3", false}, {"3.1", false}, {"^2", false}, {"^3.12", false}, {"~3.10", false},
		{">3.11", false}, {"<3.11", false}, {"3.x.2", false}, {"3.11.2.0", false}, {"latest", false}, {"3 || 4", false}, {"", false},
	} {
		if got := matches(tc.sel, "3.11.2"); got != tc.want {
			t.Errorf("matches(%q, 3.11.2) = %v, want %v", tc.sel, got, tc.want)
		}
	}
}

func TestUTF8Carry(t *testing.T) {
	var c utf8Carry
	euro := []byte("€") // 3 bytes
	got := c.text(append([]byte("a"), euro[:1]...)) + c.text(euro[1:2]) + c.text(append(euro[2:], 'b', 0xff)) + c.flush()
	if got != "a€b\uFFFD" {
		t.Errorf("got %q", got)
	}
	if got := c.text([]byte{'x', 0xe2}) + c.flush(); got != "x\uFFFD" {
		t.Errorf("a character cut at the end: got %q", got)
	}
}

var semverRE = regexp.MustCompile(`^\d+\.\d+\.\d+$`)
