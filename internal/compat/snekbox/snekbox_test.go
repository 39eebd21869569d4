package snekbox

import (
	"strings"
	"testing"
)

// Python's repr of what json.loads makes, for the values snekbox's error
// descriptions print.
func TestRepr(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{"stuff": "foo"}`, `{'stuff': 'foo'}`},
		{`{"b": 1, "a": [true, false, null], "b": 2}`, `{'b': 2, 'a': [True, False, None]}`},
		{`1.0`, `1.0`},
		{`1e2`, `100.0`},
		{`1e16`, `1e+16`},
		{`1e15`, `1000000000000000.0`},
		{`0.0001`, `0.0001`},
		{`0.00001`, `1e-05`},
		{`-0`, `0`},
		{`123456789012345678901234567890`, `123456789012345678901234567890`},
		{`1e400`, `inf`},
		{`"it's"`, `"it's"`},
		{`"it's \"q\""`, `'it\'s "q"'`},
		{`"a\\b\n\t\u0000\u00a0é\u2028"`, `'a\\b\n\t\x00\xa0é\u2028'`},
	} {
		v, err := parseJSON([]byte(tc.json))
		if err != nil {
			t.Fatalf("%s: %v", tc.json, err)
		}
		if got := v.repr(); got != tc.want {
			t.Errorf("repr(%s) = %s, want %s", tc.json, got, tc.want)
		}
	}
}

func TestParseJSONBounds(t *testing.T) {
	deep := strings.Repeat("[", maxJSONDepth+2) + strings.Repeat("]", maxJSONDepth+2)
	for _, bad := range []string{deep, `{"a": 1} x`, `{"a": }`, `[1,`} {
		if _, err := parseJSON([]byte(bad)); err == nil {
			t.Errorf("%.20s…: parsed", bad)
		}
	}
}

// The schema's errors, as snekbox's own tests expect them.
func TestSchemaError(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"input": "x"}`, ""},
		{`{"args": []}`, ""},
		{`{"stuff": "foo"}`, `{'stuff': 'foo'} is not valid under any of the given schemas`},
		{`[]`, `[] is not of type 'object'`},
		{`{"input": 1}`, `1 is not of type 'string'`},
		{`{"args": 400}`, `400 is not of type 'array'`},
		{`{"args": [], "files": [215]}`, `215 is not of type 'object'`},
		{`{"args": [1], "files": [215]}`, `1 is not of type 'string'`},
		{`{"args": [], "files": [{"content": ""}]}`, `'path' is a required property`},
		{`{"args": [], "files": [{"path": 3}]}`, `3 is not of type 'string'`},
		{`{"args": [], "files": [{"path": "a", "content": 3}]}`, `3 is not of type 'string'`},
		{`{"args": [], "executable_path": []}`, `[] is not of type 'string'`},
		{`{"args": [], "files": [{"path": "/etc"}]}`, `'/etc' does not match '^(?!/)(?!.*\\\\0).*$'`},
		{`{"args": [], "files": [{"path": "a\\0b"}]}`, `'a\\0b' does not match '^(?!/)(?!.*\\\\0).*$'`},
		{`{"args": [], "files": [{"path": "a\nb"}]}`, `'a\nb' does not match '^(?!/)(?!.*\\\\0).*$'`},
		{`{"args": [], "files": [{"path": "a\n"}]}`, ``},
		{`{"args": [], "files": [{"path": "backslash\\okay"}]}`, ``},
		// The shallowest error wins, anyOf first.
		{`{"files": 3}`, `{'files': 3} is not valid under any of the given schemas`},
	} {
		v, err := parseJSON([]byte(tc.body))
		if err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		if got := schemaError(v); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.body, got, tc.want)
		}
	}
}

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		body  string
		args  []string
		files []string // name=base64
		err   string   // title: description
	}{
		{body: `{"input": "p"}`, args: []string{"-c", "p"}},
		{body: `{"input": "p", "args": ["-u"]}`, args: []string{"-u", "p"}},
		{body: `{"input": "p", "args": ["", ""]}`, args: []string{"p"}},
		{body: `{"args": ["a"], "files": [{"path": "./x//y", "content": "YQ=="}, {"path": "x/y", "content": "Y\nQ =="}]}`,
			args: []string{"a"}, files: []string{"x/y=YQ=="}},
		{body: `{"args": [], "files": [{"path": "folder/../hm"}]}`, files: []string{"hm="}},
		{body: `{"args": [], "files": [{"path": "../x"}]}`, err: "Request file is invalid: File path '../x' may not traverse beyond root"},
		{body: `{"args": [], "files": [{"path": "a\u0000b"}]}`, err: "Request file is invalid: File path 'a\x00b' may not traverse beyond root"},
		{body: `{"args": [], "files": [{"path": "a", "content": "YQ="}]}`, err: "Request file is invalid: Invalid base64 encoding for file 'a'"},
		{body: `{"args": [], "executable_path": "/bin/sh"}`, err: "executable_path does not exist: /bin/sh names no interpreter runbox serves: only /snekbin/python/default/bin/python and paths whose name starts with python (runbox's python)"},
		{body: `{"args": [], "executable_path": ""}`},
	} {
		req, err := parseRequest([]byte(tc.body))
		if tc.err != "" || err != nil {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%s: error %v, want %s", tc.body, err, tc.err)
			}
			continue
		}
		if strings.Join(req.args, "|") != strings.Join(tc.args, "|") {
			t.Errorf("%s: args %q, want %q", tc.body, req.args, tc.args)
		}
		var files []string
		for _, f := range req.files {
			files = append(files, f.name+"="+f.content)
		}
		if strings.Join(files, " ") != strings.Join(tc.files, " ") {
			t.Errorf("%s: files %q, want %q", tc.body, files, tc.files)
		}
	}
}

func TestReturncode(t *testing.T) {
	sig := func(s string) *string { return &s }
	for _, tc := range []struct {
		r    runResult
		want int // -1: none
	}{
		{runResult{Status: "ok"}, 0},
		{runResult{Status: "runtime_error", ExitCode: 2}, 2},
		{runResult{Status: "signaled", ExitCode: -1, Signal: sig("SIGSEGV")}, 139},
		{runResult{Status: "signaled", ExitCode: -1, Signal: sig("SIGKILL")}, 137},
		{runResult{Status: "signaled", ExitCode: -1, Signal: sig("SIGSYS")}, 159},
		{runResult{Status: "signaled", ExitCode: -1, Signal: sig("signal 34")}, 162},
		{runResult{Status: "time_limit", ExitCode: -1, Signal: sig("SIGKILL")}, 137},
		{runResult{Status: "time_limit", ExitCode: -1, Signal: sig("SIGXCPU")}, 137},
		{runResult{Status: "memory_limit", ExitCode: -1, Signal: sig("SIGKILL")}, 137},
		{runResult{Status: "output_limit", ExitCode: -1, Signal: sig("SIGKILL")}, 143},
		{runResult{Status: "internal_error"}, -1},
	} {
		got := returncode(&tc.r)
		if (got == nil) != (tc.want == -1) || got != nil && *got != tc.want {
			t.Errorf("%+v: %v, want %d", tc.r, got, tc.want)
		}
	}
}

func TestAttached(t *testing.T) {
	for name, want := range map[string]bool{
		"out.png": true, "a/b/c.txt": true, "__pycache__/m.pyc": true,
		"_hidden": false, "a/_x": false, ".env": false, ".cache/x": false, "a/.git/config": false,
	} {
		if attached(name) != want {
			t.Errorf("attached(%q) = %v", name, !want)
		}
	}
}
