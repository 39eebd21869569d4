package piston

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/runbox-dev/runbox/internal/compat"
	"github.com/runbox-dev/runbox/internal/compat/compattest"
)

func TestMain(m *testing.M) { compattest.Main(m) }

// server serves the native API with the adapter at /piston over real
// boxes, and returns the base URL (the Piston base URL is base+"/piston").
//
// In runbox serve, InProcess gets the native API's handler itself. Here
// compattest hands the adapter a compat.Native, which hides that handler,
// so the in-process pipe serves a reverse proxy to the same server: the
// pipe, its one-shot listener and the upgrade are the same code.
func server(t *testing.T) string {
	t.Helper()
	var native atomic.Pointer[httputil.ReverseProxy]
	proxy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { native.Load().ServeHTTP(w, r) })
	cfg := compattest.Config()
	cfg.MaxBoxes = 4
	base := compattest.Server(t, cfg, "/piston", func(n *compat.Native) http.Handler {
		return NewWith(n, Options{Stream: InProcess(proxy, 6*cfg.MaxResponseBytes+1<<20)})
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	native.Store(httputil.NewSingleHostReverseProxy(u))
	return base
}

// available is the set of environments this host has.
func available(t *testing.T, base string) map[string]bool {
	t.Helper()
	resp, err := http.Get(base + "/v1/environments")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var envs []struct {
		Name      string `json:"name"`
		Available bool   `json:"available"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&envs); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range envs {
		out[e.Name] = e.Available
	}
	return out
}

// post sends body to the adapter's execute and decodes the answer.
func post(t *testing.T, base, contentType, body string) (int, http.Header, map[string]any) {
	t.Helper()
	resp, err := http.Post(base+"/piston/api/v2/execute", contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("answer %d is not a JSON object: %q", resp.StatusCode, b)
	}
	return resp.StatusCode, resp.Header, v
}

// field reads a dotted path ("run.stdout") of a decoded answer.
func field(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Sprintf("<no %s>", path)
		}
		if v, ok = m[k]; !ok {
			return fmt.Sprintf("<no %s>", path)
		}
	}
	return v
}

// executeBody is an execute request for one file of code.
func executeBody(lang, name, code string, extra map[string]any) string {
	file := map[string]any{"content": code}
	if name != "" {
		file["name"] = name
	}
	m := map[string]any{"language": lang, "version": "*", "files": []any{file}}
	for k, v := range extra {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// Piston requests against real boxes: the answers Piston's documentation
// describes, and never a 500 for a bad request.
func TestExecute(t *testing.T) {
	base := server(t)
	have := available(t, base)
	const (
		helloC   = "#include <stdio.h>\nint main(void){puts(\"hello\");return 0;}\n"
		brokenC  = "int main(void){ return x; }\n"
		sleepPy  = "while True: pass\n"
		signalPy = "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n"
	)
	for _, tc := range []struct {
		name, lang, contentType, body string
		status                        int
		want                          map[string]any // dotted path → value
		contains                      map[string]string
	}{
		{name: "python hello", lang: "python", body: executeBody("python", "", "print('hello')", nil), status: 200,
			want: map[string]any{"language": "python", "run.stdout": "hello\n", "run.stderr": "", "run.output": "hello\n",
				"run.code": 0.0, "run.signal": nil, "run.status": nil, "run.message": nil, "compile": "<no compile>"}},
		{name: "an alias, an unnamed main file takes the environment's source name, stdin with Piston's newline, args", lang: "python",
			body: executeBody("py", "", "import sys\nprint(sys.argv[0].endswith('main.py'), repr(sys.stdin.read()), sys.argv[1:])",
				map[string]any{"stdin": "abc", "args": []string{"x", "y"}}), status: 200,
			want: map[string]any{"run.stdout": "True 'abc\\n' ['x', 'y']\n"}},
		{name: "stdout then stderr in output", lang: "python",
			body: executeBody("python", "", "import sys\nprint('err', file=sys.stderr)\nprint('out')", nil), status: 200,
			want: map[string]any{"run.output": "out\nerr\n"}},
		{name: "files: base64 and hex, the main file the first utf8 one", lang: "python",
			body: `{"language":"python","version":"*","files":[{"name":"a.bin","encoding":"base64","content":"AAEC"},
				{"name":"b.txt","encoding":"hex","content":"6869"},
				{"content":"print(list(open('a.bin','rb').read()), open('b.txt').read())"}]}`, status: 200,
			want: map[string]any{"run.stdout": "[0, 1, 2] hi\n"}},
		{name: "bash, text/plain as the npm client sends", lang: "bash", contentType: "text/plain;charset=UTF-8",
			body: executeBody("bash", "", "echo \"$1 ${BASH_VERSION%%.*}\"", map[string]any{"args": []string{"hi"}}), status: 200,
			contains: map[string]string{"run.stdout": "hi "}},
		{name: "c", lang: "c", body: executeBody("c", "main.c", helloC, nil), status: 200,
			want: map[string]any{"language": "c", "run.stdout": "hello\n", "run.code": 0.0, "compile.code": 0.0, "compile.status": nil}},
		{name: "c compile error copied into run", lang: "c", body: executeBody("c", "main.c", brokenC, nil), status: 200,
			want:     map[string]any{"compile.status": "RE", "compile.code": 1.0, "run.status": "RE", "run.code": 1.0},
			contains: map[string]string{"compile.stderr": "error", "run.stderr": "error"}},
		{name: "RE", lang: "python", body: executeBody("python", "", "import sys\nsys.exit(3)", nil), status: 200,
			want: map[string]any{"run.status": "RE", "run.code": 3.0, "run.signal": nil}},
		{name: "SG", lang: "python", body: executeBody("python", "", signalPy, nil), status: 200,
			want: map[string]any{"run.status": "SG", "run.code": nil, "run.signal": "SIGSEGV"}},
		{name: "TO", lang: "python", body: executeBody("python", "", sleepPy, map[string]any{"run_timeout": 300}), status: 200,
			want: map[string]any{"run.status": "TO", "run.code": nil, "run.signal": "SIGKILL"}},
		{name: "TO by CPU time", lang: "python", body: executeBody("python", "", sleepPy, map[string]any{"run_cpu_time": 200}), status: 200,
			want: map[string]any{"run.status": "TO", "run.signal": "SIGKILL"}},
		{name: "OL", lang: "python", body: executeBody("python", "", "import sys\nsys.stdout.write('x' * (3 << 20))", nil), status: 200,
			want: map[string]any{"run.status": "OL", "run.code": nil, "run.signal": "SIGKILL"}},
		{name: "EL", lang: "python", body: executeBody("python", "", "import sys\nsys.stderr.write('x' * (3 << 20))", nil), status: 200,
			want: map[string]any{"run.status": "EL", "run.signal": "SIGKILL"}},
		{name: "memory is SG SIGKILL", lang: "python",
			body: executeBody("python", "", "b = b'x' * (512 << 20)", map[string]any{"run_memory_limit": 64 << 20}), status: 200,
			want: map[string]any{"run.status": "SG", "run.code": nil, "run.signal": "SIGKILL"}},
		{name: "a limit above the server's", lang: "python", body: executeBody("python", "", "", map[string]any{"run_timeout": 120000}), status: 400,
			want: map[string]any{"message": "run_timeout cannot exceed the configured limit of 60000"}},
		{name: "memory above the server's", lang: "python", body: executeBody("python", "", "", map[string]any{"compile_memory_limit": 4 << 30}), status: 400,
			want: map[string]any{"message": "compile_memory_limit cannot exceed the configured limit of 2147483648"}},
		{name: "unknown runtime", body: executeBody("intercal", "", "", nil), status: 400,
			want: map[string]any{"message": "intercal-* runtime is unknown"}},
		{name: "unknown version", lang: "python", body: `{"language":"python","version":"2.7","files":[{"content":""}]}`, status: 400,
			want: map[string]any{"message": "python-2.7 runtime is unknown"}},
		{name: "the native API's 422 named as Piston's field", lang: "python",
			body: `{"language":"python","version":"*","files":[{"name":"../x.py","content":""}]}`, status: 400,
			want: map[string]any{"message": "files[0].name: must not contain .."}},
		{name: "a form is not JSON", contentType: "application/x-www-form-urlencoded", body: "language=python", status: 415,
			want: map[string]any{"message": "requests must be of type application/json"}},
		{name: "bad JSON", body: `{"language": "python",`, status: 400, contains: map[string]string{"message": "not valid JSON"}},
		{name: "no files", body: `{"language":"python","version":"*"}`, status: 400, want: map[string]any{"message": "files is required as an array"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.lang != "" && !have[tc.lang] {
				t.Skipf("%s is not available on this host", tc.lang)
			}
			t.Parallel()
			ct := tc.contentType
			if ct == "" {
				ct = "application/json"
			}
			status, _, v := post(t, base, ct, tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %v", status, tc.status, v)
			}
			for path, want := range tc.want {
				if got := field(v, path); !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v, want %#v", path, got, want)
				}
			}
			for path, want := range tc.contains {
				if got, _ := field(v, path).(string); !strings.Contains(got, want) {
					t.Errorf("%s = %q, want it to contain %q", path, got, want)
				}
			}
			if status == 200 {
				if v, _ := field(v, "version").(string); !semverRE.MatchString(v) {
					t.Errorf("version %q is not SemVer", v)
				}
			}
		})
	}
}

// One hello program per language this host has, the way a Piston client
// sends it (the version "*", a named main file: see unnamed).
func TestHello(t *testing.T) {
	base := server(t)
	have := available(t, base)
	for _, tc := range []struct{ lang, name, code string }{
		{"python", "main.py", "print('hello')"},
		{"javascript", "main.js", "console.log('hello')"},
		{"bash", "main.sh", "echo hello"},
		{"perl", "main.pl", "print \"hello\\n\";"},
		{"c", "main.c", "#include <stdio.h>\nint main(void){puts(\"hello\");}"},
		{"c++", "main.cpp", "#include <iostream>\nint main(){std::cout << \"hello\" << std::endl;}"},
		{"go", "main.go", "package main\nimport \"fmt\"\nfunc main(){fmt.Println(\"hello\")}"},
		{"java", "Main.java", "public class Main { public static void main(String[] a) { System.out.println(\"hello\"); } }"},
		{"rust", "main.rs", "fn main() { println!(\"hello\"); }"},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			if !have[tc.lang] {
				t.Skipf("%s is not available on this host", tc.lang)
			}
			t.Parallel()
			status, _, v := post(t, base, "application/json", executeBody(tc.lang, tc.name, tc.code, nil))
			if status != 200 || field(v, "run.stdout") != "hello\n" || field(v, "run.code") != 0.0 || field(v, "language") != tc.lang {
				t.Errorf("%d %v", status, v)
			}
		})
	}
}

// runtimes lists what this host has, in Piston's shape; packages lists
// every environment.
func TestRuntimesAndPackages(t *testing.T) {
	base := server(t)
	have := available(t, base)
	var runtimes []struct {
		Language string   `json:"language"`
		Version  string   `json:"version"`
		Aliases  []string `json:"aliases"`
	}
	getJSON(t, base+"/piston/api/v2/runtimes", &runtimes)
	n := 0
	for _, ok := range have {
		if ok {
			n++
		}
	}
	if len(runtimes) != n {
		t.Errorf("%d runtimes, want %d (%v)", len(runtimes), n, have)
	}
	for _, rt := range runtimes {
		if !have[rt.Language] || !semverRE.MatchString(rt.Version) || rt.Aliases == nil {
			t.Errorf("runtime %+v", rt)
		}
	}
	var pkgs []map[string]any
	getJSON(t, base+"/piston/api/v2/packages", &pkgs)
	if len(pkgs) != len(have) {
		t.Errorf("%d packages, want %d", len(pkgs), len(have))
	}
	for _, p := range pkgs {
		if p["installed"] != have[p["language"].(string)] {
			t.Errorf("package %v", p)
		}
	}
	req, _ := http.NewRequest("POST", base+"/piston/api/v2/packages", bytes.NewReader([]byte(`{"language":"python","version":"3.12.0"}`)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotImplemented {
		t.Errorf("POST packages: %d", resp.StatusCode)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
