package opensandbox_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/runbox-dev/runbox/internal/compat"
	"github.com/runbox-dev/runbox/internal/compat/compattest"
	"github.com/runbox-dev/runbox/internal/compat/opensandbox"
)

func TestMain(m *testing.M) { compattest.Main(m) }

func server(t *testing.T) string {
	t.Helper()
	return compattest.Server(t, compattest.Config(), "/opensandbox", func(n *compat.Native) http.Handler {
		return opensandbox.New(n)
	}) + "/opensandbox"
}

// do sends method url with body as JSON (contentType "" : none) and
// returns the status, content type and body.
func do(t *testing.T, method, url, contentType, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
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
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

type result struct {
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	ExitCode *int   `json:"exit_code"`
	Signal   *int   `json:"signal"`
}

func runOK(t *testing.T, url, body string) result {
	t.Helper()
	status, _, b := do(t, "POST", url, "application/json", body)
	if status != http.StatusOK {
		t.Fatalf("POST %s %s: %d %s", url, body, status, b)
	}
	var r result
	if err := json.Unmarshal([]byte(b), &r); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return r
}

func intp(v int) *int { return &v }

func TestRun(t *testing.T) {
	base := server(t)
	for _, tc := range []struct {
		name     string
		body     string
		stdout   string
		exitCode *int
		signal   *int
	}{
		{"echo", `{"command":["echo","hello"]}`, "hello\n", intp(0), nil},
		{"env", `{"command":["sh","-c","echo $GREETING"],"env":{"GREETING":"hi"}}`, "hi\n", intp(0), nil},
		{"cwd", `{"command":["pwd"],"cwd":"/tmp"}`, "/tmp\n", intp(0), nil},
		{"cwd / is the workspace", `{"command":["pwd"],"cwd":"/"}`, "/box\n", intp(0), nil},
		{"exit code", `{"command":["sh","-c","exit 3"]}`, "", intp(3), nil},
		{"signal", `{"command":["sh","-c","kill -SEGV $$"]}`, "", nil, intp(11)},
		{"cpu time limit", `{"command":["sh","-c","while :; do :; done"],"time":1000}`, "", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runOK(t, base+"/run", tc.body)
			if tc.name == "cpu time limit" {
				if r.Signal == nil || r.ExitCode != nil {
					t.Fatalf("want a signal and no exit code, got %+v", r)
				}
				return
			}
			if r.Stdout != tc.stdout || !eqp(r.ExitCode, tc.exitCode) || !eqp(r.Signal, tc.signal) {
				t.Fatalf("got %+v (exit %v, signal %v), want stdout %q exit %v signal %v", r, deref(r.ExitCode), deref(r.Signal), tc.stdout, deref(tc.exitCode), deref(tc.signal))
			}
		})
	}
}

func eqp(a, b *int) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestErrors: axum's rejections in plain text, never a 500.
func TestErrors(t *testing.T) {
	base := server(t)
	for _, tc := range []struct {
		name, method, path, ct, body string
		status                       int
		text                         string
	}{
		{"no content type", "POST", "/run", "", `{"command":["true"]}`, 415, "Expected request with `Content-Type: application/json`"},
		{"syntax", "POST", "/run", "application/json", `{"command":`, 400, "Failed to parse the request body as JSON"},
		{"missing command", "POST", "/run", "application/json", `{}`, 422, "missing field `command`"},
		{"mistyped time", "POST", "/run", "application/json", `{"command":["true"],"time":"x"}`, 422, "time"},
		{"negative mem", "POST", "/run", "application/json", `{"command":["true"],"mem":-1}`, 422, "mem"},
		{"empty command", "POST", "/run", "application/json", `{"command":[]}`, 422, "command"},
		{"above the maximum", "POST", "/run", "application/json", `{"command":["true"],"time":999999999}`, 422, "time: 999999999 is above"},
		{"mem above the maximum", "POST", "/run", "application/json", `{"command":["true"],"mem":99999999999}`, 422, "mem:"},
		{"session run not found", "POST", "/sessions/0123456789abcdef0123456789abcdef/run", "application/json", `{"command":["true"]}`, 404, "Session not found"},
		{"session get not found", "GET", "/sessions/nope", "", "", 404, ""},
		{"session delete not found", "DELETE", "/sessions/nope", "", "", 404, ""},
		{"session env not found", "POST", "/sessions/nope/env", "application/json", `{"env":{}}`, 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, ct, body := do(t, tc.method, base+tc.path, tc.ct, tc.body)
			if status != tc.status || !strings.Contains(body, tc.text) || tc.text == "" && body != "" {
				t.Fatalf("got %d %q, want %d containing %q", status, body, tc.status, tc.text)
			}
			if body != "" && !strings.HasPrefix(ct, "text/plain") {
				t.Fatalf("content type %q, want text/plain", ct)
			}
		})
	}
}

func TestSessions(t *testing.T) {
	base := server(t)
	status, _, b := do(t, "POST", base+"/sessions", "application/json", `{"env":{"GH_TOKEN":"secret","A":"1"}}`)
	if status != 200 {
		t.Fatalf("create: %d %s", status, b)
	}
	var created struct {
		SessionID string `json:"session_id"`
	}
	if err := json.Unmarshal([]byte(b), &created); err != nil || created.SessionID == "" {
		t.Fatalf("create: %s %v", b, err)
	}
	s := base + "/sessions/" + created.SessionID

	if r := runOK(t, s+"/run", `{"command":["sh","-c","echo $A$B; echo x > f"],"env":{"B":"2"}}`); r.Stdout != "12\n" {
		t.Fatalf("run with overlay: %+v", r)
	}
	if r := runOK(t, s+"/run", `{"command":["sh","-c","echo $A$B; cat f"]}`); r.Stdout != "1\nx\n" {
		t.Fatalf("overlay kept, or file lost: %+v", r)
	}
	for _, c := range []struct{ path, body string }{{"/env", `{"env":{"B":"3"}}`}, {"/cwd", `{"cwd":"/tmp"}`}} {
		if status, _, b := do(t, "POST", s+c.path, "application/json", c.body); status != 200 || b != "" {
			t.Fatalf("POST %s: %d %q", c.path, status, b)
		}
	}
	if r := runOK(t, s+"/run", `{"command":["sh","-c","echo $A$B; pwd"],"cwd":"/"}`); r.Stdout != "13\n/tmp\n" {
		t.Fatalf("env or cwd not kept: %+v", r)
	}

	// GET shows the variable names, never their values.
	status, _, b = do(t, "GET", base+"/sessions", "", "")
	if status != 200 || strings.Contains(b, "secret") {
		t.Fatalf("list: %d %s", status, b)
	}
	var list []struct {
		ID  string            `json:"id"`
		Env map[string]string `json:"env"`
		Cwd string            `json:"cwd"`
	}
	if err := json.Unmarshal([]byte(b), &list); err != nil || len(list) != 1 || list[0].ID != created.SessionID ||
		list[0].Env["GH_TOKEN"] != "***" || list[0].Env["B"] != "***" || list[0].Cwd != "/tmp" {
		t.Fatalf("list: %s %v", b, err)
	}
	status, _, b = do(t, "GET", s, "", "")
	if status != 200 || strings.Contains(b, "secret") || !strings.Contains(b, `"age_secs"`) || !strings.Contains(b, `"idle_secs"`) {
		t.Fatalf("get: %d %s", status, b)
	}

	if status, _, b := do(t, "DELETE", s, "", ""); status != 204 || b != "" {
		t.Fatalf("delete: %d %q", status, b)
	}
	if status, _, _ := do(t, "GET", s, "", ""); status != 404 {
		t.Fatalf("get after delete: %d", status)
	}
	if status, _, b := do(t, "GET", base+"/sessions", "", ""); status != 200 || b != "[]\n" {
		t.Fatalf("list after delete: %d %q", status, b)
	}
}

func TestHealth(t *testing.T) {
	base := server(t)
	if status, _, b := do(t, "GET", base+"/health", "", ""); status != 200 || b != "OK" {
		t.Fatalf("health: %d %q", status, b)
	}
}

// TestNoServerError: bad input is the client's error, never a 500.
func TestNoServerError(t *testing.T) {
	base := server(t)
	for _, body := range []string{
		`[]`, `"x"`, `null`, `{"command":null}`, `{"command":[""]}`, `{"command":["a\u0000"]}`, `{"command":["true"],"env":{"A":1}}`,
		`{"command":["true"],"env":{"1A":"x"}}`, `{"command":["true"],"env":{"A":"x\u0000"}}`, `{"command":["true"],"cwd":"relative"}`,
		`{"command":["true"],"time":1e30}`, `{"command":["true"],"time":0}`, `{"command":["true"],"nofile":0}`, `{"command":["true"],"nofile":1}`,
		`{"command":["true"],"mem":1}`, `{"command":["true"],"mem":0}`, `{"command":["true"],"fsize":0}`, `{"command":["true"],"mem":18446744073709551615}`,
		`{"command":["no-such-program"]}`, `{"command":["true"],"cwd":"/no/such/dir"}`,
	} {
		for _, path := range []string{"/run", "/sessions"} {
			status, _, b := do(t, "POST", base+path, "application/json", body)
			if status >= 500 {
				t.Errorf("POST %s %s: %d %s", path, body, status, b)
			}
		}
	}
	for _, path := range []string{"/sessions/%3Fx", "/sessions/..%2F..%2Fv1%2Finfo", "/sessions/x/y/z", "/nope"} {
		if status, _, b := do(t, "GET", base+path, "", ""); status != 404 {
			t.Errorf("GET %s: %d %s", path, status, b)
		}
	}
}
