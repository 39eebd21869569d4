package sandkasten_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/runbox-dev/runbox/internal/compat"
	"github.com/runbox-dev/runbox/internal/compat/compattest"
	"github.com/runbox-dev/runbox/internal/compat/sandkasten"
)

func TestMain(m *testing.M) { compattest.Main(m) }

func server(t *testing.T) string {
	t.Helper()
	return compattest.Server(t, compattest.Config(), "/sandkasten", func(n *compat.Native) http.Handler {
		return sandkasten.New(n)
	}) + "/sandkasten"
}

func do(t *testing.T, method, url, body string) (int, string, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
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
	var v map[string]any
	_ = json.Unmarshal(b, &v)
	return resp.StatusCode, string(b), v
}

// environments are the ids the server lists.
func environments(t *testing.T, base string) map[string]any {
	t.Helper()
	status, b, v := do(t, "GET", base+"/environments", "")
	if status != 200 {
		t.Fatalf("environments: %d %s", status, b)
	}
	return v
}

func need(t *testing.T, envs map[string]any, id string) {
	t.Helper()
	if _, ok := envs[id]; !ok {
		t.Skipf("this host has no %s environment", id)
	}
}

func get(v any, path ...string) any {
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	return v
}

func TestBuildRun(t *testing.T) {
	base := server(t)
	envs := environments(t, base)
	for _, tc := range []struct {
		name, env, body string
		stdout          string
		status          float64
		compiled        bool
	}{
		{"python", "python", `{"build":{"environment":"python","main_file":{"content":"import sys\nprint(input()[::-1]); sys.exit(3)"}},"run":{"stdin":"olleh"}}`, "hello\n", 3, false},
		{"python args and env", "python", `{"build":{"environment":"python","main_file":{"name":"x.py","content":"import os,sys\nprint(sys.argv[1:], os.environ['A'], os.environ['B'])"},"env_vars":[{"name":"A","value":"a"}]},"run":{"args":["1","2"],"env_vars":[{"name":"B","value":"b"}]}}`, "['1', '2'] a b\n", 0, false},
		{"c", "c", `{"build":{"environment":"c","main_file":{"content":"#include <stdio.h>\nint main(){puts(\"hi from c\");return 0;}"}}}`, "hi from c\n", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			need(t, envs, tc.env)
			status, b, v := do(t, "POST", base+"/run", tc.body)
			if status != 200 {
				t.Fatalf("%d %s", status, b)
			}
			if get(v, "run", "stdout") != tc.stdout || get(v, "run", "status") != tc.status ||
				(get(v, "build") != nil) != tc.compiled || get(v, "ttl") != 600.0 || len(get(v, "program_id").(string)) != 36 {
				t.Fatalf("got %s", b)
			}
			if get(v, "run", "limits", "network") != false || get(v, "run", "resource_usage", "time") == nil {
				t.Fatalf("no limits or usage: %s", b)
			}
		})
	}
}

func TestCompileError(t *testing.T) {
	base := server(t)
	need(t, environments(t, base), "c")
	for _, path := range []string{"/run", "/programs"} {
		body := `{"environment":"c","main_file":{"content":"int main( {"}}`
		if path == "/run" {
			body = `{"build":` + body + `}`
		}
		status, b, v := do(t, "POST", base+path, body)
		if status != 400 || v["error"] != "compile_error" || get(v, "details", "status") == 0.0 || get(v, "details", "stderr") == "" {
			t.Fatalf("%s: %d %s", path, status, b)
		}
	}
}

// TestPrograms: a program built once runs twice with different stdin; a
// second upload is cached.
func TestPrograms(t *testing.T) {
	base := server(t)
	envs := environments(t, base)
	for _, tc := range []struct{ env, content string }{
		{"python", `print(input() * 2)`},
		{"c", `#include <stdio.h>
int main(){char s[64]; if(scanf("%63s", s)==1) printf("%s%s\n", s, s); return 0;}`},
	} {
		t.Run(tc.env, func(t *testing.T) {
			need(t, envs, tc.env)
			content, _ := json.Marshal(tc.content)
			build := `{"environment":"` + tc.env + `","main_file":{"content":` + string(content) + `}}`
			status, b, v := do(t, "POST", base+"/programs", build)
			if status != 201 || v["cached"] != false {
				t.Fatalf("build: %d %s", status, b)
			}
			if compiled := get(envs, tc.env, "meta", "compiled").(bool); (v["compile_result"] != nil) != compiled {
				t.Fatalf("compile_result for compiled=%v: %s", compiled, b)
			}
			id := v["program_id"].(string)
			for _, in := range []string{"ab", "xyz"} {
				status, b, v := do(t, "POST", base+"/programs/"+id+"/run", `{"stdin":"`+in+`\n"}`)
				if status != 200 || v["stdout"] != in+in+"\n" || v["status"] != 0.0 {
					t.Fatalf("run %q: %d %s", in, status, b)
				}
			}
			status, b, v = do(t, "POST", base+"/programs", build)
			if status != 201 || v["cached"] != true || v["program_id"] != id {
				t.Fatalf("second build: %d %s", status, b)
			}
			status, b, v = do(t, "POST", base+"/run", `{"build":`+build+`,"run":{"stdin":"q\n"}}`)
			if status != 200 || v["cached"] != true || v["program_id"] != id || get(v, "run", "stdout") != "qq\n" {
				t.Fatalf("build and run of a known program: %d %s", status, b)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	base := server(t)
	need(t, environments(t, base), "python")
	py := `"environment":"python","main_file":{"content":"print(1)"}`
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code                     string
		details                  string
	}{
		{"unknown environment", "POST", "/run", `{"build":{"environment":"intercal","main_file":{"content":""}}}`, 404, "environment_not_found", ""},
		{"unknown environment, build", "POST", "/programs", `{"environment":"intercal","main_file":{"content":""}}`, 404, "environment_not_found", ""},
		{"unknown program", "POST", "/programs/00000000-0000-0000-0000-000000000000/run", `{}`, 404, "program_not_found", ""},
		{"duplicate file", "POST", "/run", `{"build":{` + py + `,"files":[{"name":"main.py","content":""}]}}`, 400, "invalid_file_names", ""},
		{"dots file", "POST", "/programs", `{` + py + `,"files":[{"name":"..","content":""}]}`, 400, "invalid_file_names", ""},
		{"run limits exceeded", "POST", "/run", `{"build":{` + py + `},"run":{"run_limits":{"time":100000,"memory":999999,"network":true}}}`, 400, "run_limits_exceeded",
			`[{"max_value":60,"name":"time"},{"max_value":2048,"name":"memory"},{"max_value":0,"name":"network"}]`},
		{"compile limits exceeded", "POST", "/programs", `{` + py + `,"compile_limits":{"cpus":2}}`, 400, "compile_limits_exceeded", `[{"max_value":1,"name":"cpus"}]`},
		{"bad json", "POST", "/run", `{"build":`, 400, "", ""},
		{"missing main file", "POST", "/programs", `{"environment":"python"}`, 400, "", ""},
		{"bad env var name", "POST", "/programs", `{` + py + `,"env_vars":[{"name":"A-B","value":""}]}`, 400, "", ""},
		{"zero time", "POST", "/run", `{"build":{` + py + `},"run":{"run_limits":{"time":0}}}`, 400, "", ""},
		{"bad program id", "POST", "/programs/nope/run", `{}`, 400, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, b, v := do(t, tc.method, base+tc.path, tc.body)
			if status != tc.status || tc.code != "" && v["error"] != tc.code || tc.code == "" && v != nil {
				t.Fatalf("got %d %s, want %d %q", status, b, tc.status, tc.code)
			}
			if tc.details != "" {
				d, _ := json.Marshal(v["details"])
				if string(d) != tc.details {
					t.Fatalf("details %s, want %s", d, tc.details)
				}
			}
		})
	}
}

func TestLimitsApply(t *testing.T) {
	base := server(t)
	need(t, environments(t, base), "python")
	status, b, v := do(t, "POST", base+"/run", `{"build":{"environment":"python","main_file":{"content":"print('x'*100)\nwhile True: pass"}},"run":{"run_limits":{"time":1,"stdout_max_size":200}}}`)
	if status != 200 || get(v, "run", "status") != 137.0 || get(v, "run", "limits", "time") != 1.0 {
		t.Fatalf("%d %s", status, b)
	}
	// The streams are cut to their sizes; the run is not ended for it.
	status, b, v = do(t, "POST", base+"/run", `{"build":{"environment":"python","main_file":{"content":"import sys\nprint('x'*100); print('y'*100, file=sys.stderr)"}},"run":{"run_limits":{"stdout_max_size":3,"stderr_max_size":0}}}`)
	if status != 200 || get(v, "run", "status") != 0.0 || get(v, "run", "stdout") != "xxx" || get(v, "run", "stderr") != "" {
		t.Fatalf("%d %s", status, b)
	}
}

func TestEnvironmentsAndConfig(t *testing.T) {
	base := server(t)
	envs := environments(t, base)
	need(t, envs, "python")
	if get(envs, "python", "default_main_file_name") != "main.py" || get(envs, "python", "name") != "python" || get(envs, "python", "version") == "" {
		t.Fatalf("python: %v", envs["python"])
	}
	status, b, v := do(t, "GET", base+"/config", "")
	if status != 200 || v["program_ttl"] != 600.0 || get(v, "run_limits", "time") != 60.0 || get(v, "compile_limits", "memory") != 2048.0 ||
		get(v, "run_limits", "network") != false || v["max_concurrent_jobs"] != 2.0 {
		t.Fatalf("config: %d %s", status, b)
	}
}

// TestNoServerError: bad input is the client's error, never a 500.
func TestNoServerError(t *testing.T) {
	base := server(t)
	need(t, environments(t, base), "python")
	py := `"environment":"python","main_file":{"content":"print(1)"}`
	for _, tc := range []struct{ path, body string }{
		{"/run", `[]`}, {"/run", `null`}, {"/run", `{"build":null}`}, {"/programs", `{"environment":5}`},
		{"/programs", `{` + py + `,"files":[{"name":"a","content":5}]}`},
		{"/run", `{"build":{` + py + `},"run":{"run_limits":{"memory":1}}}`},
		{"/run", `{"build":{` + py + `},"run":{"run_limits":{"tmpfs":0,"stdout_max_size":0,"stderr_max_size":0}}}`},
		{"/run", `{"build":{` + py + `},"run":{"run_limits":{"file_descriptors":1}}}`},
		{"/run", `{"build":{` + py + `},"run":{"run_limits":{"time":-1}}}`},
		{"/run", `{"build":{` + py + `},"run":{"args":["\u0000"]}}`},
		{"/run", `{"build":{` + py + `},"run":{"files":[{"name":"main.py","content":""}]}}`},
		{"/run", `{"build":{"environment":"python","main_file":{"name":"../x","content":""}}}`},
	} {
		status, b, _ := do(t, "POST", base+tc.path, tc.body)
		if status >= 500 || status < 400 && !strings.Contains(tc.body, "tmpfs") {
			t.Errorf("POST %s %s: %d %s", tc.path, tc.body, status, b)
		}
	}
}
