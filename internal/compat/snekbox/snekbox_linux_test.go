package snekbox_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/runbox-dev/runbox/internal/compat"
	"github.com/runbox-dev/runbox/internal/compat/compattest"
	"github.com/runbox-dev/runbox/internal/compat/snekbox"
)

func TestMain(m *testing.M) { compattest.Main(m) }

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// server serves snekbox's API at /snekbox of a native API with the test
// configuration (the jail's default limits: 10 s of wall time).
func server(t *testing.T) string {
	t.Helper()
	return compattest.Server(t, compattest.Config(), "/snekbox", func(n *compat.Native) http.Handler { return snekbox.New(n) }) + "/snekbox"
}

func do(t *testing.T, method, url, contentType, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("answer %d is not a JSON object: %q", resp.StatusCode, b)
		}
	}
	return resp.StatusCode, resp.Header, out
}

func ok(stdout string, code any, files ...any) map[string]any {
	if files == nil {
		files = []any{}
	}
	return map[string]any{"stdout": stdout, "returncode": code, "files": files}
}

func file(path, content string) map[string]any {
	return map[string]any{"path": path, "size": float64(len(content)), "content": b64(content)}
}

// TestEval is snekbox's documented behaviour, request → answer, over the
// real listener and jail.
func TestEval(t *testing.T) {
	url := server(t)
	program := func(src string) string {
		b, _ := json.Marshal(map[string]any{"input": src})
		return string(b)
	}
	for _, tc := range []struct {
		name   string
		method string // POST when empty
		ctype  string // application/json when empty; "-" for none
		body   string
		status int
		want   map[string]any
		// stdoutHas, when set, is checked instead of want's stdout.
		stdoutHas string
	}{
		{name: "print", body: `{"input": "print('hello')"}`, status: 200, want: ok("hello\n", 0.0)},
		{name: "no content type is JSON", ctype: "-", body: `{"input": "print(1)"}`, status: 200, want: ok("1\n", 0.0)},
		{name: "args only", body: `{"args": ["-c", "import sys; print(sys.argv[1:])", "a", "b"]}`, status: 200, want: ok("['a', 'b']\n", 0.0)},
		{name: "input appended to args", body: `{"args": ["-X", "utf8", "-c"], "input": "import sys; print(sys.flags.utf8_mode)"}`, status: 200, want: ok("1\n", 0.0)},
		{name: "leading empty args dropped", body: `{"args": ["", "-c"], "input": "print('x')"}`, status: 200, want: ok("x\n", 0.0)},
		{name: "empty program", body: `{"input": ""}`, status: 200, want: ok("", 0.0)},
		{name: "exit code", body: program("raise SystemExit(3)"), status: 200, want: ok("", 3.0)},
		{name: "exception", body: program("1/0"), status: 200, want: ok("", 1.0), stdoutHas: "ZeroDivisionError: division by zero"},
		{name: "SIGKILL", body: program("import os; os.kill(os.getpid(), 9)"), status: 200, want: ok("", 137.0)},
		{name: "SIGSEGV", body: program("import ctypes; ctypes.string_at(0)"), status: 200, want: ok("", 139.0)},
		{name: "SIGTERM", body: program("import os, signal; os.kill(os.getpid(), signal.SIGTERM)"), status: 200, want: ok("", 143.0)},
		{name: "time limit", body: program("import time; print('start', flush=True); time.sleep(30)"), status: 200, want: ok("start\n", 137.0)},
		{name: "default executable_path", body: `{"input": "print(2)", "executable_path": "/snekbin/python/default/bin/python"}`, status: 200, want: ok("2\n", 0.0)},
		{name: "a python executable_path", body: `{"input": "print(3)", "executable_path": "/snekbin/python/3.13/bin/python3.13"}`, status: 200, want: ok("3\n", 0.0)},
		{
			name: "files in and out",
			body: `{"args": ["main.py"], "files": [
				{"path": "main.py", "content": "` + b64("import os\nprint(open('data/in.txt').read())\nopen('out.txt', 'w').write('made')\n"+
				"open('data/mod.txt', 'a').write('+')\nopen('_hidden.txt', 'w').write('no')\nos.makedirs('.cache')\nopen('.cache/x', 'w').write('no')\n"+
				"os.makedirs('sub/_dir')\nopen('sub/_dir/deep.txt', 'w').write('yes')\n") + `"},
				{"path": "./data/in.txt", "content": "` + b64("input") + `"},
				{"path": "data/mod.txt", "content": "` + b64("m") + `"}]}`,
			status: 200,
			want:   ok("input\n", 0.0, file("data/mod.txt", "m+"), file("out.txt", "made"), file("sub/_dir/deep.txt", "yes")),
		},
		{name: "file without content", body: `{"args": ["-c", "import os; print(os.path.getsize('empty'))"], "files": [{"path": "empty"}]}`, status: 200, want: ok("0\n", 0.0)},
		{name: "NUL in an argument", body: `{"args": ["-c", "print(1)\u0000"]}`, status: 200, want: ok("ValueError: embedded null byte", nil)},
		{name: "the home as a file", body: `{"input": "1", "files": [{"path": "a/.."}]}`, status: 200, want: ok("IsADirectoryError: Failed to create file 'a/..'.", nil)},

		// One pipe as both descriptors, as snekbox's: the streams
		// interleaved in the order written.
		{name: "stderr interleaved with stdout", body: program("import sys\nprint('a')\nprint('b', file=sys.stderr)\nprint('c')"), status: 200, want: ok("a\nb\nc\n", 0.0)},

		{name: "unknown executable_path", body: `{"input": "1", "executable_path": "/usr/bin/ruby"}`, status: 400,
			want: map[string]any{"title": "executable_path does not exist", "description": "/usr/bin/ruby names no interpreter runbox serves: only /snekbin/python/default/bin/python and paths whose name starts with python (runbox's python)"}},
		{name: "bad base64", body: `{"input": "1", "files": [{"path": "a.txt", "content": "abc"}]}`, status: 400,
			want: map[string]any{"title": "Request file is invalid", "description": "Invalid base64 encoding for file 'a.txt'"}},
		{name: "missing input and args", body: `{"files": []}`, status: 400,
			want: map[string]any{"title": "Request data failed validation", "description": "{'files': []} is not valid under any of the given schemas"}},
		{name: "unknown field only", body: `{"stuff": "foo"}`, status: 400,
			want: map[string]any{"title": "Request data failed validation", "description": "{'stuff': 'foo'} is not valid under any of the given schemas"}},
		{name: "args of the wrong type", body: `{"args": 400}`, status: 400,
			want: map[string]any{"title": "Request data failed validation", "description": "400 is not of type 'array'"}},
		{name: "a file of the wrong type", body: `{"args": [], "files": [215]}`, status: 400,
			want: map[string]any{"title": "Request data failed validation", "description": "215 is not of type 'object'"}},
		{name: "absolute path", body: `{"args": [], "files": [{"path": "/etc"}]}`, status: 400,
			want: map[string]any{"title": "Request data failed validation", "description": `'/etc' does not match '^(?!/)(?!.*\\\\0).*$'`}},
		{name: "path beyond the root", body: `{"args": [], "files": [{"path": "dir/../../secrets"}]}`, status: 400,
			want: map[string]any{"title": "Request file is invalid", "description": "File path 'dir/../../secrets' may not traverse beyond root"}},
		{name: "a name the native API refuses", body: `{"args": [], "files": [{"path": "ok"}, {"path": "back\\slash"}]}`, status: 400,
			want: map[string]any{"title": "Request file is invalid", "description": "files[1].path: must use / as the separator"}},
		{name: "not JSON", body: `{"input": `, status: 400,
			want: map[string]any{"title": "Invalid JSON", "description": "Could not parse JSON body - unexpected EOF"}},
		{name: "empty body", body: ``, status: 400,
			want: map[string]any{"title": "Invalid JSON", "description": "Could not parse an empty JSON body"}},
		{name: "content type", ctype: "application/xml", body: `{'input': 'foo'}`, status: 415,
			want: map[string]any{"title": "415 Unsupported Media Type", "description": "application/xml is an unsupported media type."}},
		{name: "method", method: "GET", status: 405, want: map[string]any{"title": "405 Method Not Allowed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method, ctype := tc.method, tc.ctype
			if method == "" {
				method = "POST"
			}
			switch ctype {
			case "":
				ctype = "application/json"
			case "-":
				ctype = ""
			}
			status, _, got := do(t, method, url+"/eval", ctype, tc.body)
			if tc.stdoutHas != "" {
				if s, _ := got["stdout"].(string); !strings.Contains(s, tc.stdoutHas) {
					t.Errorf("stdout %q does not contain %q", s, tc.stdoutHas)
				}
				got["stdout"] = tc.want["stdout"]
			}
			if status != tc.status || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("answer %d %v\nwant   %d %v", status, got, tc.status, tc.want)
			}
		})
	}
}

// TestRoutes: the other methods and paths answer as falcon does.
func TestRoutes(t *testing.T) {
	url := server(t)
	status, hdr, _ := do(t, "OPTIONS", url+"/eval", "", "")
	if status != 200 || hdr.Get("Allow") != "POST" {
		t.Errorf("OPTIONS: %d Allow %q", status, hdr.Get("Allow"))
	}
	status, hdr, _ = do(t, "PUT", url+"/eval", "application/json", "{}")
	if status != 405 || hdr.Get("Allow") != "POST" {
		t.Errorf("PUT: %d Allow %q", status, hdr.Get("Allow"))
	}
	status, _, body := do(t, "POST", url+"/nothing", "application/json", "{}")
	if status != 404 || body["title"] != "404 Not Found" {
		t.Errorf("unknown path: %d %v", status, body)
	}
}
