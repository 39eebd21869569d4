package codebox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/compat"
	"github.com/runbox-dev/runbox/internal/compat/codebox"
	"github.com/runbox-dev/runbox/internal/compat/compattest"
	"github.com/runbox-dev/runbox/internal/testwait"
)

func TestMain(m *testing.M) { compattest.Main(m) }

// server serves Codebox's API at /codebox and returns the native API's
// base URL.
func server(t *testing.T) string {
	t.Helper()
	return compattest.Server(t, compattest.Config(), "/codebox", func(n *compat.Native) http.Handler {
		return codebox.New(n, nil)
	})
}

func post(t *testing.T, ctx context.Context, url, contentType, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
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
	return resp.StatusCode, b
}

// res is an expected command answer; elapsed_time is checked apart.
func res(stdout, stderr string, code int) map[string]any {
	return map[string]any{"stdout": stdout, "stderr": stderr, "exit_code": float64(code)}
}

// noSessions fails unless the native API lists no session (soon).
func noSessions(t *testing.T, base string) {
	t.Helper()
	eventually(t, 5*time.Second, func() error {
		resp, err := http.Get(base + "/v1/sessions")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var list struct {
			Sessions []struct {
				ID string `json:"id"`
			} `json:"sessions"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
			return err
		}
		if len(list.Sessions) > 0 {
			return fmt.Errorf("sessions left: %v", list.Sessions)
		}
		return nil
	})
}

// eventually polls until a condition holds (testwait.Eventually).
var eventually = testwait.Eventually

// TestExecute is Codebox's documented behaviour, request → answer, over
// the real listener and jail; no session outlives a request.
func TestExecute(t *testing.T) {
	base := server(t)
	for _, tc := range []struct {
		name string
		body string
		want []map[string]any
	}{
		{
			name: "hello",
			body: `{"sources": {"hello.py": "print('Hello World!')"}, "commands": [{"command": "/venv/bin/python hello.py", "timeout": 5}]}`,
			want: []map[string]any{res("Hello World!\n", "", 0)},
		},
		{
			name: "sources in subdirectories, stdin",
			body: `{"sources": {"app/__init__.py": "", "app/main.py": "import sys\n\nfor line in sys.stdin.readlines():\n    sys.stdout.write(line)\n"},
				"commands": [{"command": "/venv/bin/python app/main.py", "timeout": 5, "stdin": "1\n2\n3"}]}`,
			want: []map[string]any{res("1\n2\n3", "", 0)},
		},
		{
			name: "Codebox's project test",
			body: `{"sources": {"main.py": "print(\"Olá mundo!\")\n", "hello/hello.py": "import sys\n\nfor line in sys.stdin.readlines():\n    sys.stdout.write(line)\n"},
				"commands": [
					{"command": "/bin/sleep 0.3", "timeout": 0.2},
					{"command": "/venv/bin/python main.py", "timeout": 5},
					{"command": "/venv/bin/python hello/hello.py", "stdin": "Olá\nAçúcar", "timeout": 5},
					{"command": "/bin/cat hello.py"},
					{"command": "/bin/cat main.py"}]}`,
			want: []map[string]any{
				res("", "Timeout Error. Exceeded 0.2s", -1),
				res("Olá mundo!\n", "", 0),
				res("Olá\nAçúcar", "", 0),
				res("", "/bin/cat: hello.py: No such file or directory\n", 1),
				res("print(\"Olá mundo!\")\n", "", 0),
			},
		},
		{
			name: "no source, one command",
			body: `{"sources": {}, "commands": [{"command": "/bin/echo 1 2 3"}]}`,
			want: []map[string]any{res("1 2 3\n", "", 0)},
		},
		{name: "no command", body: `{"sources": {"a.py": "1"}, "commands": []}`, want: []map[string]any{}},
		{
			name: "commands share files",
			body: `{"sources": {}, "commands": [
				{"command": "/bin/sh -c 'echo \"a b\" > made.txt; echo done'", "timeout": 5},
				{"command": "cat made.txt", "timeout": 5}]}`,
			want: []map[string]any{res("done\n", "", 0), res("a b\n", "", 0)},
		},
		{
			name: "shlex quoting",
			body: `{"sources": {}, "commands": [{"command": "printf '%s|' \"a b\" 'c d' e\\ f \"q\\\"q\" ''", "timeout": 5}]}`,
			want: []map[string]any{res(`a b|c d|e f|q"q||`, "", 0)},
		},
		{
			name: "alias path",
			body: `{"sources": {}, "commands": [{"command": "/venv/bin/python -c 'print(1)'", "timeout": 5}]}`,
			want: []map[string]any{res("1\n", "", 0)},
		},
		{
			name: "default timeout is Codebox's",
			body: `{"sources": {}, "commands": [{"command": "sleep 2"}]}`,
			want: []map[string]any{res("", "Timeout Error. Exceeded 0.2s", -1)},
		},
		{
			name: "timeout keeps the output so far",
			body: `{"sources": {}, "commands": [{"command": "sh -c 'echo out; echo err >&2; sleep 5'", "timeout": 1}]}`,
			want: []map[string]any{res("out\n", "err\n", -1)},
		},
		{
			name: "memory kill",
			body: `{"sources": {}, "commands": [{"command": "python3 -c 'x = \" \" * (1 << 30)'", "timeout": 10}]}`,
			want: []map[string]any{res("", "", 137)},
		},
		{
			name: "segfault",
			body: `{"sources": {}, "commands": [{"command": "python3 -c 'import ctypes; ctypes.string_at(0)'", "timeout": 5}]}`,
			want: []map[string]any{res("", "", 139)},
		},
		{
			name: "not found",
			body: `{"sources": {}, "commands": [{"command": "/venv/bin/nothing", "timeout": 5}]}`,
			want: []map[string]any{res("", "cannot execute /venv/bin/nothing: no such file or directory", 127)},
		},
		{
			name: "NUL in an argument",
			body: `{"sources": {}, "commands": [{"command": "echo a\u0000b"}, {"command": "echo ok", "timeout": 5}]}`,
			want: []map[string]any{res("", "embedded null byte", -1), res("ok\n", "", 0)},
		},
		{
			name: "source outside the sandbox",
			body: `{"sources": {"invalid/path/../../../../usr/bin/help.py": "test"}, "commands": [{"command": "ls"}]}`,
			want: []map[string]any{res("", "Invalid file path: /usr/bin/help.py", -1)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, b := post(t, context.Background(), base+"/codebox/execute", "application/json", tc.body)
			var got []map[string]any
			if err := json.Unmarshal(b, &got); status != 200 || err != nil {
				t.Fatalf("answer %d %s", status, b)
			}
			for _, g := range got {
				if e, ok := g["elapsed_time"].(float64); !ok || e < 0 {
					t.Errorf("elapsed_time %v", g["elapsed_time"])
				}
				delete(g, "elapsed_time")
				// The exact reason of a failed exec is runbox's.
				if s, _ := g["stderr"].(string); strings.Contains(s, "cannot execute /venv/bin/nothing") {
					g["stderr"] = "cannot execute /venv/bin/nothing: no such file or directory"
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("answer\n%v\nwant\n%v", got, tc.want)
			}
			noSessions(t, base)
		})
	}
}

// TestInvalid: bad input is a 422 with FastAPI's detail, never a 500, and
// leaves no session.
func TestInvalid(t *testing.T) {
	base := server(t)
	detail := func(items ...string) string { return `{"detail":[` + strings.Join(items, ",") + `]}` }
	for _, tc := range []struct {
		name, ctype, body string
		status            int
		want              string
	}{
		{"empty body", "application/json", ``, 422, detail(`{"type":"missing","loc":["body"],"msg":"Field required","input":null}`)},
		{"missing fields", "application/json", `{}`, 422, detail(
			`{"type":"missing","loc":["body","sources"],"msg":"Field required","input":{}}`,
			`{"type":"missing","loc":["body","commands"],"msg":"Field required","input":{}}`)},
		{"wrong types", "application/json", `{"sources": [], "commands": "x"}`, 422, detail(
			`{"type":"dict_type","loc":["body","sources"],"msg":"Input should be a valid dictionary","input":[]}`,
			`{"type":"list_type","loc":["body","commands"],"msg":"Input should be a valid list","input":"x"}`)},
		{"wrong field types", "application/json", `{"sources": {"a": 1}, "commands": [3, {"stdin": 2, "timeout": "soon"}]}`, 422, detail(
			`{"type":"string_type","loc":["body","sources","a"],"msg":"Input should be a valid string","input":1}`,
			`{"type":"model_attributes_type","loc":["body","commands",0],"msg":"Input should be a valid dictionary or object to extract fields from","input":3}`,
			`{"type":"missing","loc":["body","commands",1,"command"],"msg":"Field required","input":{"stdin": 2, "timeout": "soon"}}`,
			`{"type":"string_type","loc":["body","commands",1,"stdin"],"msg":"Input should be a valid string","input":2}`,
			`{"type":"float_parsing","loc":["body","commands",1,"timeout"],"msg":"Input should be a valid number, unable to parse string as a number","input":"soon"}`)},
		{"not JSON", "application/json", `{"sources": `, 422, detail(
			`{"type":"json_invalid","loc":["body",12],"msg":"JSON decode error","input":{},"ctx":{"error":"unexpected EOF"}}`)},
		{"not a JSON content type", "text/plain", `{"sources": {}, "commands": []}`, 422, detail(
			`{"type":"model_attributes_type","loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","input":"{\"sources\": {}, \"commands\": []}"}`)},
		{"unclosed quote", "application/json", `{"sources": {}, "commands": [{"command": "echo 'a"}]}`, 422, detail(
			`{"type":"value_error","loc":["body","commands",0,"command"],"msg":"Value error, No closing quotation","input":{"command": "echo 'a"}}`)},
		{"empty command", "application/json", `{"sources": {}, "commands": [{"command": "  "}]}`, 422, detail(
			`{"type":"value_error","loc":["body","commands",0,"command"],"msg":"Value error, the command is empty","input":{"command": "  "}}`)},
		{"a source name the native API refuses", "application/json", `{"sources": {"ok": "", "back\\slash": "x"}, "commands": [{"command": "ls"}]}`, 422, detail(
			`{"type":"value_error","loc":["body","sources","back\\slash"],"msg":"Value error, must use / as the separator","input":null}`)},
		// The second command's timeout is above the server's maximum: the
		// first ran, the session is deleted all the same.
		{"timeout above the maximum", "application/json", `{"sources": {}, "commands": [{"command": "true", "timeout": 1}, {"command": "true", "timeout": 1e9}]}`, 422, detail(
			`{"type":"value_error","loc":["body","commands",1,"timeout"],"msg":"Value error, must be at most 60000 (the server's maximum)","input":null}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, b := post(t, context.Background(), base+"/codebox/execute", tc.ctype, tc.body)
			if status != tc.status || !jsonEqual(b, []byte(tc.want)) {
				t.Errorf("answer %d %s\nwant   %d %s", status, b, tc.status, tc.want)
			}
			noSessions(t, base)
		})
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// TestDisconnect: a client that goes away mid-command leaves no session.
func TestDisconnect(t *testing.T) {
	base := server(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/codebox/execute",
			strings.NewReader(`{"sources": {}, "commands": [{"command": "sleep 20", "timeout": 30}]}`))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	eventually(t, 10*time.Second, func() error {
		resp, err := http.Get(base + "/v1/sessions")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if !bytes.Contains(b, []byte(`"running_commands":1`)) {
			return fmt.Errorf("no running command yet: %s", b)
		}
		return nil
	})
	cancel()
	<-done
	noSessions(t, base)
}

func TestLanguages(t *testing.T) {
	base := server(t)
	resp, err := http.Get(base + "/codebox/languages")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&got); resp.StatusCode != 200 || err != nil {
		t.Fatalf("answer %d: %v", resp.StatusCode, err)
	}
	version := regexp.MustCompile(`^[0-9]+\.[0-9]+`)
	for _, name := range []string{"python", "bash"} {
		if !version.MatchString(got[name]) {
			t.Errorf("%s: version %q in %v", name, got[name], got)
		}
	}
	for name, v := range got {
		if !map[string]bool{"python": true, "rust": true, "sqlite3": true, "bash": true}[name] || !version.MatchString(v) {
			t.Errorf("%s: %q", name, v)
		}
	}
}

// TestRoutes: other methods and paths answer as FastAPI does;
// /execute_insecure is /execute.
func TestRoutes(t *testing.T) {
	base := server(t)
	resp, err := http.Get(base + "/codebox/execute")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" || !jsonEqual(b, []byte(`{"detail":"Method Not Allowed"}`)) {
		t.Errorf("GET /execute: %d %q %s", resp.StatusCode, resp.Header.Get("Allow"), b)
	}
	status, b := post(t, context.Background(), base+"/codebox/nothing", "application/json", "{}")
	if status != 404 || !jsonEqual(b, []byte(`{"detail":"Not Found"}`)) {
		t.Errorf("unknown path: %d %s", status, b)
	}
	status, b = post(t, context.Background(), base+"/codebox/execute_insecure", "", `{"sources": {}, "commands": [{"command": "echo x", "timeout": 5}]}`)
	if status != 200 || !strings.Contains(string(b), `"stdout":"x\n"`) {
		t.Errorf("execute_insecure: %d %s", status, b)
	}
}
