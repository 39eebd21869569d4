package api

// The sessions API over a real listener and the real jail: a session's
// life, the state it keeps across commands, limits that end one command
// and spare the session, background commands and the caps, expiry, and
// the file endpoints under attack: the host never follows a path that a
// program in the box controls.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/runner"
	"github.com/runbox-dev/runbox/internal/session"
	"github.com/runbox-dev/runbox/internal/testwait"
)

// sessionServer serves the API, sessions included, over the real jail on
// 127.0.0.1 until the test ends. At the end every session is closed
// before the server shuts down, and nothing of them may be left: no
// process of a box, no mount.
func sessionServer(tb testing.TB, cfg Config, sc session.Config) (string, *session.Manager) {
	tb.Helper()
	url, m, _ := sessionServerWith(tb, cfg, sc)
	return url, m
}

// sessionServerWith is sessionServer that also returns the server.
func sessionServerWith(tb testing.TB, cfg Config, sc session.Config) (string, *session.Manager, *Server) {
	tb.Helper()
	if testEnv == nil {
		tb.Skip(skipReason)
	}
	mounts := runboxMounts(tb)
	// Cleanups run last first: these checks after the server's shutdown,
	// which comes after the manager's close.
	tb.Cleanup(func() {
		if t, ok := tb.(*testing.T); ok {
			assertNoBoxes(t)
		}
		eventually(tb, 10*time.Second, func() error {
			if n := runboxMounts(tb); n != mounts {
				return fmt.Errorf("%d runbox mounts in the host's table, %d before", n, mounts)
			}
			return nil
		})
	})
	r := runner.New(testEnv.Jail, testReg, runner.NewCache(cfg.CacheBytes, time.Hour))
	m := session.NewManager(r, sc, slog.New(slog.DiscardHandler))
	cfg.Sessions = m
	url, s := serveWith(tb, cfg, r, testReg)
	tb.Cleanup(func() {
		m.Close()
		if n := len(m.List()); n != 0 {
			tb.Errorf("%d sessions left after the manager closed", n)
		}
	})
	return url, m, s
}

// runboxMounts counts the host's mounts that name runbox.
func runboxMounts(tb testing.TB) int {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		tb.Fatal(err)
	}
	return strings.Count(strings.ToLower(string(b)), "runbox")
}

// eventually polls until a condition holds (testwait.Eventually).
var eventually = testwait.Eventually

// reply is an HTTP answer: its status, its JSON body decoded (nil when it
// has none), its raw body and its headers.
type reply struct {
	code   int
	body   map[string]any
	raw    []byte
	header http.Header
}

// send makes one request: body nil sends none, []byte or an io.Reader
// sends raw bytes (a Reader without a length: chunked), anything else
// JSON.
func send(ctx context.Context, method, url string, body any) (reply, error) {
	return sendWith(ctx, http.DefaultClient, method, url, body)
}

// sendWith is send through client.
func sendWith(ctx context.Context, client *http.Client, method, url string, body any) (reply, error) {
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ctype = bytes.NewReader(b), "application/octet-stream"
	case io.Reader:
		rd, ctype = b, "application/octet-stream"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return reply{}, err
		}
		rd, ctype = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return reply{}, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	r := reply{code: resp.StatusCode, raw: raw, header: resp.Header}
	if strings.Contains(resp.Header.Get("Content-Type"), "json") {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			return r, fmt.Errorf("%s %s: status %d, not JSON: %.300s", method, url, r.code, raw)
		}
	}
	return r, nil
}

// call is send that fails the test on a transport error; every call is
// bounded in time, so a server that hangs fails the test instead.
func call(tb testing.TB, method, url string, body any) reply {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := send(ctx, method, url, body)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

// expect checks an answer's status.
func expect(tb testing.TB, r reply, status int) {
	tb.Helper()
	if r.code != status {
		tb.Fatalf("status %d, want %d: %.1000s", r.code, status, r.raw)
	}
}

// expectProblem checks a problem+json answer naming location.
func expectProblem(tb testing.TB, r reply, status int, location string) {
	tb.Helper()
	if ct := r.header.Get("Content-Type"); r.code != status || !strings.HasPrefix(ct, "application/problem+json") {
		tb.Fatalf("status %d (%s), want %d problem+json: %.1000s", r.code, ct, status, r.raw)
	}
	if got := field(r.body, "errors", "0", "location"); location != "" && got != location {
		tb.Fatalf("location %v, want %s: %s", got, location, r.raw)
	}
	if id, _ := r.body["request_id"].(string); id == "" {
		tb.Fatalf("no request_id in %s", r.raw)
	}
}

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// newSession creates a session (201), deleted when the test ends.
func newSession(tb testing.TB, url string, body map[string]any) (string, map[string]any) {
	tb.Helper()
	if body == nil {
		body = map[string]any{}
	}
	r := call(tb, "POST", url+"/v1/sessions", body)
	expect(tb, r, http.StatusCreated)
	id, _ := r.body["id"].(string)
	if !hexID.MatchString(id) {
		tb.Fatalf("session id %q is not 128 bits in hex", id)
	}
	tb.Cleanup(func() {
		if r := call(tb, "DELETE", url+"/v1/sessions/"+id, nil); r.code != http.StatusNoContent && r.code != http.StatusNotFound {
			tb.Errorf("delete session: %d %s", r.code, r.raw)
		}
	})
	return id, r.body
}

// command runs a foreground command and returns its result (200).
func command(tb testing.TB, url, id string, body map[string]any) map[string]any {
	tb.Helper()
	r := call(tb, "POST", url+"/v1/sessions/"+id+"/commands", body)
	expect(tb, r, http.StatusOK)
	return r.body
}

// wantResult checks a result's status and stdout.
func wantResult(tb testing.TB, res map[string]any, status, stdout string) {
	tb.Helper()
	if res["status"] != status || res["stdout"] != stdout {
		tb.Fatalf("status %v stdout %q, want %s %q\n%v", res["status"], res["stdout"], status, stdout, res)
	}
}

// alive checks that the session still runs commands.
func alive(tb testing.TB, url, id string) {
	tb.Helper()
	wantResult(tb, command(tb, url, id, map[string]any{"command": []string{"echo", "alive"}}), "ok", "alive\n")
}

// background starts a background command and returns its id.
func background(tb testing.TB, url, id string, body map[string]any) string {
	tb.Helper()
	body["background"] = true
	r := call(tb, "POST", url+"/v1/sessions/"+id+"/commands", body)
	expect(tb, r, http.StatusAccepted)
	cid, _ := r.body["command_id"].(string)
	if !hexID.MatchString(cid) || r.body["url"] != "/v1/sessions/"+id+"/commands/"+cid {
		tb.Fatalf("202 body %s", r.raw)
	}
	return cid
}

// finished waits for a command's end and returns its description.
func finished(tb testing.TB, url, id, cid string) map[string]any {
	tb.Helper()
	var out map[string]any
	eventually(tb, 30*time.Second, func() error {
		r := call(tb, "GET", url+"/v1/sessions/"+id+"/commands/"+cid, nil)
		if r.code != http.StatusOK {
			return fmt.Errorf("status %d %s", r.code, r.raw)
		}
		if r.body["status"] != "done" {
			return fmt.Errorf("command %s still %v", cid, r.body["status"])
		}
		out = r.body
		return nil
	})
	if out["result"] == nil || out["finished_at"] == nil {
		tb.Fatalf("done without a result: %v", out)
	}
	return out
}

// boxProcesses lists the processes a command sees in its box besides
// init and the listing itself.
func boxProcesses(tb testing.TB, url, id string) []string {
	tb.Helper()
	res := command(tb, url, id, map[string]any{"shell": `for p in /proc/[0-9]*; do echo "${p#/proc/} $(cat $p/comm 2>/dev/null)"; done`})
	var left []string
	for _, line := range strings.Split(strings.TrimSpace(res["stdout"].(string)), "\n") {
		pid, comm, _ := strings.Cut(line, " ")
		// The shell and its cats, and the next command's waiting first
		// stage (named by a number for the instant before it names
		// itself).
		if pid == "1" || comm == "sh" || comm == "cat" || comm == "" || strings.HasPrefix(comm, "runbox") || strings.Trim(comm, "0123456789") == "" {
			continue
		}
		left = append(left, line)
	}
	return left
}

func TestSessionLifecycle(t *testing.T) {
	url, _ := sessionServer(t, testConfig(), session.Config{})
	id, out := newSession(t, url, map[string]any{"env": map[string]string{"GREETING": "hi"},
		"files": []map[string]string{{"name": "a.txt", "content": "hello\n"}}})
	created, err1 := time.Parse(time.RFC3339Nano, fmt.Sprint(out["created_at"]))
	expires, err2 := time.Parse(time.RFC3339Nano, fmt.Sprint(out["expires_at"]))
	if err1 != nil || err2 != nil || !expires.After(created) {
		t.Fatalf("created_at %v expires_at %v", out["created_at"], out["expires_at"])
	}
	if out["url"] != "/v1/sessions/"+id || out["cwd"] != "/box" || field(out, "env", "GREETING") != "hi" ||
		field(out, "limits", "memory_bytes") != float64(runner.DefaultLimits.Memory) || out["running_commands"] != float64(0) {
		t.Fatalf("session: %v", out)
	}
	other, _ := newSession(t, url, nil)
	if other == id {
		t.Fatal("two sessions got the same id")
	}

	r := call(t, "GET", url+"/v1/sessions", nil)
	expect(t, r, http.StatusOK)
	var ids []string
	for _, s := range r.body["sessions"].([]any) {
		ids = append(ids, s.(map[string]any)["id"].(string))
	}
	if !slices.Equal(ids, []string{id, other}) {
		t.Fatalf("list %v, want %v (oldest first)", ids, []string{id, other})
	}
	r = call(t, "GET", url+"/v1/sessions/"+id, nil)
	expect(t, r, http.StatusOK)
	if r.body["id"] != id || field(r.body, "env", "GREETING") != "hi" {
		t.Fatalf("get: %s", r.raw)
	}

	// The session's environment, the command's own, the default cwd.
	res := command(t, url, id, map[string]any{"shell": `cat a.txt; echo "$GREETING $X"; pwd`, "env": map[string]string{"X": "there"}})
	wantResult(t, res, "ok", "hello\nhi there\n/box\n")

	r = call(t, "PATCH", url+"/v1/sessions/"+id, map[string]any{"env": map[string]string{"EXTRA": "more"},
		"unset_env": []string{"GREETING"}, "cwd": "/tmp", "idle_timeout_ms": 60000})
	expect(t, r, http.StatusOK)
	if env, _ := r.body["env"].(map[string]any); len(env) != 1 || env["EXTRA"] != "more" || r.body["cwd"] != "/tmp" || r.body["idle_timeout_ms"] != float64(60000) {
		t.Fatalf("patched: %s", r.raw)
	}
	res = command(t, url, id, map[string]any{"shell": `echo "[$GREETING][$EXTRA]"; pwd`})
	wantResult(t, res, "ok", "[][more]\n/tmp\n")
	// A command's own cwd wins; a relative one is refused.
	wantResult(t, command(t, url, id, map[string]any{"command": []string{"pwd"}, "cwd": "/box"}), "ok", "/box\n")
	expectProblem(t, call(t, "POST", url+"/v1/sessions/"+id+"/commands", map[string]any{"command": []string{"pwd"}, "cwd": "box"}), 422, "body.cwd")
	expectProblem(t, call(t, "POST", url+"/v1/sessions/"+id+"/commands", map[string]any{}), 422, "body.command")
	expectProblem(t, call(t, "POST", url+"/v1/sessions/"+id+"/commands", map[string]any{"command": []string{"true"}, "shell": "true"}), 422, "body.shell")
	expectProblem(t, call(t, "PATCH", url+"/v1/sessions/"+id, map[string]any{"unset_env": []string{"1X"}}), 422, "body.unset_env[0]")

	// Files, then a run, in the same box.
	expect(t, call(t, "PUT", url+"/v1/sessions/"+id+"/files/box/sub/b.txt", []byte("data")), http.StatusNoContent)
	r = call(t, "GET", url+"/v1/sessions/"+id+"/files/box/sub/b.txt", nil)
	expect(t, r, http.StatusOK)
	if string(r.raw) != "data" || r.header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("read back %q (%s)", r.raw, r.header.Get("Content-Type"))
	}
	r = call(t, "GET", url+"/v1/sessions/"+id+"/files?path=/box", nil)
	expect(t, r, http.StatusOK)
	if got := entries(r); got["a.txt"] != "file" || got["sub"] != "dir" || len(got) != 2 {
		t.Fatalf("listing %v", got)
	}
	r = call(t, "POST", url+"/v1/sessions/"+id+"/run", map[string]any{"command": []string{"/bin/sh", "-c", `cat /box/sub/b.txt; echo " $EXTRA"`}})
	expect(t, r, http.StatusOK)
	if field(r.body, "run", "stdout") != "data more\n" {
		t.Fatalf("run: %s", r.raw)
	}

	// Deleted: gone for every call. A made-up id was never there.
	r = call(t, "DELETE", url+"/v1/sessions/"+id, nil)
	if r.code != http.StatusNoContent || len(r.raw) != 0 {
		t.Fatalf("delete: %d %q", r.code, r.raw)
	}
	for _, missing := range []string{id, strings.Repeat("0", 32), "not-a-session"} {
		base := url + "/v1/sessions/" + missing
		expectProblem(t, call(t, "GET", base, nil), 404, "path.id")
		expectProblem(t, call(t, "DELETE", base, nil), 404, "path.id")
		expectProblem(t, call(t, "PATCH", base, map[string]any{"cwd": "/box"}), 404, "path.id")
		expectProblem(t, call(t, "POST", base+"/commands", map[string]any{"command": []string{"true"}}), 404, "path.id")
		expectProblem(t, call(t, "GET", base+"/commands", nil), 404, "path.id")
		expectProblem(t, call(t, "POST", base+"/run", map[string]any{"command": []string{"true"}}), 404, "path.id")
		expectProblem(t, call(t, "GET", base+"/files/box/a.txt", nil), 404, "path.id")
		expectProblem(t, call(t, "PUT", base+"/files/box/a.txt", []byte("x")), 404, "path.id")
		expectProblem(t, call(t, "GET", base+"/files", nil), 404, "path.id")
	}
	r = call(t, "GET", url+"/v1/sessions", nil)
	if n := len(r.body["sessions"].([]any)); n != 1 || field(r.body, "sessions", "0", "id") != other {
		t.Fatalf("list after delete: %s", r.raw)
	}
}

// entries maps a listing's names to their types.
func entries(r reply) map[string]string {
	out := map[string]string{}
	list, _ := r.body["entries"].([]any)
	for _, e := range list {
		m := e.(map[string]any)
		out[m["name"].(string)] = m["type"].(string)
	}
	return out
}

func TestSessionStateAndRun(t *testing.T) {
	url, _ := sessionServer(t, testConfig(), session.Config{})
	t.Run("files persist, shell state does not", func(t *testing.T) {
		id, _ := newSession(t, url, nil)
		wantResult(t, command(t, url, id, map[string]any{"shell": "echo one > f; mkdir -p d; echo two > /tmp/t; V=1; cd d"}), "ok", "")
		wantResult(t, command(t, url, id, map[string]any{"shell": `cat f /tmp/t; test -d d && echo dir; echo "[$V]"; pwd`}), "ok",
			"one\ntwo\ndir\n[]\n/box\n")
		res := command(t, url, id, map[string]any{"command": []string{"cat"}, "stdin": "from stdin"})
		wantResult(t, res, "ok", "from stdin")
		res = command(t, url, id, map[string]any{"shell": "echo err >&2; exit 3"})
		if res["status"] != "runtime_error" || res["exit_code"] != float64(3) || res["stderr"] != "err\n" {
			t.Fatalf("exit 3: %v", res)
		}
		res = command(t, url, id, map[string]any{"command": []string{"no-such-command"}})
		if res["status"] != "runtime_error" || res["exit_code"] != float64(127) {
			t.Fatalf("missing command: %v", res)
		}
	})
	t.Run("python run over the session's files", func(t *testing.T) {
		requireLanguage(t, "python")
		id, out := newSession(t, url, map[string]any{"language": "py"})
		if out["language"] != "python" {
			t.Fatalf("language %v", out["language"])
		}
		expect(t, call(t, "PUT", url+"/v1/sessions/"+id+"/files/box/helper.py", []byte("X = 41\n")), http.StatusNoContent)
		// No language: the session's.
		r := call(t, "POST", url+"/v1/sessions/"+id+"/run", map[string]any{
			"files": []map[string]string{{"name": "main.py", "content": "import helper\nprint(helper.X + int(input()))\n"}}, "stdin": "1"})
		expect(t, r, http.StatusOK)
		if r.body["language"] != "python" || field(r.body, "run", "status") != "ok" || field(r.body, "run", "stdout") != "42\n" {
			t.Fatalf("run: %s", r.raw)
		}
		// The run's files stay in the session.
		wantResult(t, command(t, url, id, map[string]any{"shell": "ls main.py helper.py"}), "ok", "helper.py\nmain.py\n")
		r = call(t, "POST", url+"/v1/sessions/"+id+"/run", map[string]any{
			"files": []map[string]string{{"name": "main.py", "content": "print(1)"}}, "outputs": []string{"*.txt"}})
		expectProblem(t, r, 422, "body.outputs")
		for _, tc := range []struct{ key, limit string }{{"limits", "memory_bytes"}, {"limits", "processes"}, {"compile_limits", "disk_bytes"}, {"limits", "file_size_bytes"}} {
			r = call(t, "POST", url+"/v1/sessions/"+id+"/run", map[string]any{
				"files": []map[string]string{{"name": "main.py", "content": "print(1)"}}, tc.key: map[string]any{tc.limit: 1 << 20}})
			expectProblem(t, r, 422, "body."+tc.key)
		}
		r = call(t, "POST", url+"/v1/sessions/"+id+"/run", map[string]any{"command": []string{"cat"},
			"cases": []map[string]any{{"stdin": "a", "expected_output": "a"}, {"stdin": "b", "expected_output": "c"}}})
		expect(t, r, http.StatusOK)
		if field(r.body, "cases", "0", "verdict") != "accepted" || field(r.body, "cases", "1", "verdict") != "wrong_answer" || r.body["run"] != nil {
			t.Fatalf("cases: %s", r.raw)
		}
	})
	t.Run("C compiles in the session and its program stays", func(t *testing.T) {
		requireLanguage(t, "c")
		id, _ := newSession(t, url, nil)
		// A source of its own: compiled here, never taken from a cache.
		token := time.Now().UnixNano()
		src := fmt.Sprintf("#include <stdio.h>\nint main(){printf(\"built %%d\\n\", %d);}\n", token%1000000)
		r := call(t, "POST", url+"/v1/sessions/"+id+"/run", map[string]any{"language": "c",
			"files": []map[string]string{{"name": "main.c", "content": src}}})
		expect(t, r, http.StatusOK)
		stdout := fmt.Sprintf("built %d\n", token%1000000)
		if field(r.body, "compile", "status") != "ok" || r.body["cached"] != false || field(r.body, "run", "stdout") != stdout {
			t.Fatalf("run: %s", r.raw)
		}
		wantResult(t, command(t, url, id, map[string]any{"command": []string{"./main"}}), "ok", stdout)
		r = call(t, "POST", url+"/v1/sessions/"+id+"/run", map[string]any{"language": "c",
			"files": []map[string]string{{"name": "main.c", "content": "int main( {"}}})
		expect(t, r, http.StatusOK)
		if field(r.body, "compile", "status") != "runtime_error" || r.body["run"] != nil {
			t.Fatalf("compile error: %s", r.raw)
		}
	})
}

// A limit of one command ends that command, with its own status; the
// session, and its next command, go on, and nothing of the command is
// left in the box.
func TestSessionCommandLimitsSpareTheSession(t *testing.T) {
	url, _ := sessionServer(t, testConfig(), session.Config{})
	id, _ := newSession(t, url, map[string]any{"limits": map[string]any{"memory_bytes": 96 << 20, "processes": 32, "disk_bytes": 8 << 20}})
	cases := []struct {
		name   string
		body   map[string]any
		status []string
		check  func(t *testing.T, res map[string]any)
	}{
		{"memory bomb", map[string]any{"shell": `v=$(head -c 400000000 /dev/zero | tr '\0' x); echo ${#v}`}, []string{"memory_limit"},
			func(t *testing.T, res map[string]any) {
				if res["memory_bytes"].(float64) > 97<<20 {
					t.Errorf("session peak %v above its limit", res["memory_bytes"])
				}
			}},
		// The bomb spreads while its first shell waits (exec: a fork
		// could fail) until the clock ends it all.
		{"fork bomb", map[string]any{"command": []string{"/bin/bash", "-c", ":(){ :|:& };:; exec sleep 5"}, "limits": map[string]any{"wall_time_ms": 2000}},
			[]string{"time_limit"}, nil},
		{"disk fill", map[string]any{"command": []string{"dd", "if=/dev/zero", "of=/box/big", "bs=1M", "count=64"}}, []string{"runtime_error"},
			func(t *testing.T, res map[string]any) {
				if !strings.Contains(res["stderr"].(string), "No space left on device") {
					t.Errorf("stderr %q", res["stderr"])
				}
			}},
		{"wall time", map[string]any{"command": []string{"sleep", "5"}, "limits": map[string]any{"wall_time_ms": 300}}, []string{"time_limit"},
			func(t *testing.T, res map[string]any) {
				// The clock runs from the command's start; its reported
				// wall time from its exec, a little later.
				if w := res["wall_time_ms"].(float64); w < 250 || w > 3000 {
					t.Errorf("wall time %v ms", w)
				}
			}},
		{"CPU time", map[string]any{"shell": "while :; do :; done", "limits": map[string]any{"cpu_time_ms": 300}}, []string{"time_limit"},
			func(t *testing.T, res map[string]any) {
				if !strings.Contains(res["message"].(string), "CPU") {
					t.Errorf("message %q", res["message"])
				}
			}},
		{"output", map[string]any{"command": []string{"yes"}, "limits": map[string]any{"output_bytes": 1000}}, []string{"output_limit"},
			func(t *testing.T, res map[string]any) {
				if out := res["stdout"].(string); len(out) != 1000 || out[:4] != "y\ny\n" || res["stdout_truncated"] != true {
					t.Errorf("stdout %d bytes, truncated %v", len(out), res["stdout_truncated"])
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := command(t, url, id, tc.body)
			if !slices.Contains(tc.status, res["status"].(string)) {
				t.Fatalf("status %v (%v), want one of %v\nstdout %.300s\nstderr %.300s", res["status"], res["message"], tc.status, res["stdout"], res["stderr"])
			}
			t.Logf("%s: %v (%v), wall %v ms", tc.name, res["status"], res["message"], res["wall_time_ms"])
			if tc.check != nil {
				tc.check(t, res)
			}
			alive(t, url, id)
			if left := boxProcesses(t, url, id); len(left) != 0 {
				t.Fatalf("processes left in the box after the command: %v", left)
			}
		})
	}
	// The partial file of the disk fill stays: the session's, to remove.
	wantResult(t, command(t, url, id, map[string]any{"shell": "rm /box/big && echo removed"}), "ok", "removed\n")
	// Limits above the server's maxima are refused, naming the field.
	expectProblem(t, call(t, "POST", url+"/v1/sessions/"+id+"/commands", map[string]any{"command": []string{"true"},
		"limits": map[string]any{"wall_time_ms": time.Hour.Milliseconds()}}), 422, "body.limits.wall_time_ms")
	expectProblem(t, call(t, "POST", url+"/v1/sessions", map[string]any{"limits": map[string]any{"memory_bytes": int64(4 << 30)}}), 422, "body.limits.memory_bytes")
}

func TestSessionBackgroundCommands(t *testing.T) {
	url, _ := sessionServer(t, testConfig(), session.Config{MaxCommands: 2, MaxSessions: 2})
	id, _ := newSession(t, url, nil)
	base := url + "/v1/sessions/" + id

	// Two at once: both are running at the same instant.
	a := background(t, url, id, map[string]any{"shell": "echo a-start; sleep 2; echo a-end"})
	b := background(t, url, id, map[string]any{"shell": "echo b-start; sleep 2; echo b-end"})
	r := call(t, "GET", base, nil)
	if r.body["running_commands"] != float64(2) {
		t.Fatalf("running_commands %v, want 2", r.body["running_commands"])
	}
	r = call(t, "GET", base+"/commands", nil)
	expect(t, r, http.StatusOK)
	if cmds := r.body["commands"].([]any); len(cmds) != 2 || field(r.body, "commands", "0", "id") != a || field(r.body, "commands", "1", "id") != b ||
		field(r.body, "commands", "0", "status") != "running" || field(r.body, "commands", "1", "status") != "running" {
		t.Fatalf("commands: %s", r.raw)
	}
	// The cap: a third command, of any kind, is turned away for now.
	for _, tc := range []struct {
		path string
		body map[string]any
	}{
		{"/commands", map[string]any{"command": []string{"true"}, "background": true}},
		{"/commands", map[string]any{"command": []string{"true"}}},
		{"/run", map[string]any{"command": []string{"true"}}},
	} {
		r := call(t, "POST", base+tc.path, tc.body)
		expectProblem(t, r, http.StatusTooManyRequests, "")
		if r.header.Get("Retry-After") == "" {
			t.Fatalf("429 without Retry-After: %v", r.header)
		}
	}
	// Output so far, while it runs.
	eventually(t, 10*time.Second, func() error {
		r := call(t, "GET", base+"/commands/"+a, nil)
		if r.body["status"] != "running" || r.body["stdout"] != "a-start\n" || r.body["result"] != nil {
			return fmt.Errorf("running command: %s", r.raw)
		}
		return nil
	})
	for cid, want := range map[string]string{a: "a-start\na-end\n", b: "b-start\nb-end\n"} {
		out := finished(t, url, id, cid)
		if field(out, "result", "status") != "ok" || field(out, "result", "stdout") != want || out["background"] != true {
			t.Fatalf("command %s: %v", cid, out)
		}
	}
	// Room again.
	wantResult(t, command(t, url, id, map[string]any{"command": []string{"echo", "room"}}), "ok", "room\n")

	t.Run("signal", func(t *testing.T) {
		cid := background(t, url, id, map[string]any{"shell": "echo ready; exec sleep 100.6"})
		eventually(t, 10*time.Second, func() error {
			if r := call(t, "GET", base+"/commands/"+cid, nil); r.body["stdout"] != "ready\n" {
				return fmt.Errorf("not ready: %s", r.raw)
			}
			return nil
		})
		expectProblem(t, call(t, "POST", base+"/commands/"+cid+"/signal", map[string]any{"signal": "SIGFOO"}), 422, "body.signal")
		expect(t, call(t, "POST", base+"/commands/"+cid+"/signal", map[string]any{"signal": "SIGTERM"}), http.StatusNoContent)
		out := finished(t, url, id, cid)
		if field(out, "result", "status") != "signaled" || field(out, "result", "signal") != "SIGTERM" {
			t.Fatalf("after SIGTERM: %v", out["result"])
		}
		expectProblem(t, call(t, "POST", base+"/commands/"+cid+"/signal", map[string]any{"signal": "SIGTERM"}), http.StatusConflict, "path.cid")
		expectProblem(t, call(t, "POST", base+"/commands/"+strings.Repeat("0", 32)+"/signal", map[string]any{"signal": "SIGTERM"}), 404, "path.cid")
		expectProblem(t, call(t, "GET", base+"/commands/"+strings.Repeat("0", 32), nil), 404, "path.cid")
		if p := sleepers("100.6"); len(p) != 0 {
			t.Fatalf("sleep left on the host: %v", p)
		}
	})
	t.Run("sessions cap", func(t *testing.T) {
		second, _ := newSession(t, url, nil)
		r := call(t, "POST", url+"/v1/sessions", map[string]any{})
		expectProblem(t, r, http.StatusTooManyRequests, "")
		if r.header.Get("Retry-After") == "" {
			t.Fatalf("429 without Retry-After: %v", r.header)
		}
		expect(t, call(t, "DELETE", url+"/v1/sessions/"+second, nil), http.StatusNoContent)
		newSession(t, url, nil)
	})
}

// A session run's answer is held as a run's is: its worst case is counted
// in the memory budget before it runs.
func TestSessionRunHoldsTheMemoryBudget(t *testing.T) {
	cfg := testConfig()
	cfg.MaxResponseBytes, cfg.MemoryBudget = 4<<20, 16<<20
	url, _, s := sessionServerWith(t, cfg, session.Config{})
	id, _ := newSession(t, url, nil)
	// Each holds 2 streams × 2 MiB: three take 12 MiB of the 16 (two
	// run, one waits for a box).
	sleeper := map[string]any{"command": []string{"sleep", "41.7"}, "limits": map[string]any{"output_bytes": 2 << 20}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = send(ctx, "POST", url+"/v1/run", sleeper)
		}()
	}
	waitUntil(t, func() bool { return s.budget.inUse() >= 12<<20 && len(sleepers("41.7")) == 2 })
	run := map[string]any{"command": []string{"echo", "ran"}, "limits": map[string]any{"output_bytes": 2 << 20}}
	r := call(t, "POST", url+"/v1/sessions/"+id+"/run", run)
	expectProblem(t, r, http.StatusTooManyRequests, "")
	if r.header.Get("Retry-After") == "" {
		t.Fatalf("429 without Retry-After: %v", r.header)
	}
	cancel()
	wg.Wait()
	waitUntil(t, func() bool { return len(sleepers("41.7")) == 0 && s.budget.inUse() == 0 })
	r = call(t, "POST", url+"/v1/sessions/"+id+"/run", run)
	expect(t, r, http.StatusOK)
	if field(r.body, "run", "stdout") != "ran\n" {
		t.Fatalf("run: %s", r.raw)
	}
	waitUntil(t, func() bool { return s.budget.inUse() == 0 })
}

func TestSessionExpiry(t *testing.T) {
	url, _ := sessionServer(t, testConfig(), session.Config{IdleTimeout: 30 * time.Second, MaxIdleTimeout: time.Minute,
		Lifetime: time.Minute, MaxLifetime: 2 * time.Minute})
	t.Run("idle", func(t *testing.T) {
		start := time.Now()
		idle, out := newSession(t, url, map[string]any{"idle_timeout_ms": 1500})
		used, _ := newSession(t, url, map[string]any{"idle_timeout_ms": 1500})
		busy, _ := newSession(t, url, map[string]any{"idle_timeout_ms": 1500})
		background(t, url, busy, map[string]any{"command": []string{"sleep", "3"}})
		created, _ := time.Parse(time.RFC3339Nano, out["created_at"].(string))
		expires, _ := time.Parse(time.RFC3339Nano, out["expires_at"].(string))
		if d := expires.Sub(created); d != 1500*time.Millisecond {
			t.Fatalf("expires %v after creation, want 1.5s", d)
		}
		var gone time.Duration
		eventually(t, 15*time.Second, func() error {
			// The used session lives on: a call resets its clock.
			alive(t, url, used)
			// One with a running command is not idle.
			if elapsed := time.Since(start); elapsed < 2500*time.Millisecond {
				expect(t, call(t, "GET", url+"/v1/sessions/"+busy, nil), http.StatusOK)
			}
			r := call(t, "GET", url+"/v1/sessions/"+idle, nil)
			if r.code == http.StatusOK {
				return errors.New("the idle session is still there")
			}
			expectProblem(t, r, 404, "path.id")
			if gone == 0 {
				gone = time.Since(start)
			}
			if time.Since(start) < 3*time.Second {
				return errors.New("keep using the other one for 3 s")
			}
			return nil
		})
		if gone < 1500*time.Millisecond {
			t.Fatalf("the idle session ended after %v, before its idle timeout", gone)
		}
		// Once its command has ended, the busy one idles out too; the
		// used one lives on.
		eventually(t, 15*time.Second, func() error {
			alive(t, url, used)
			if r := call(t, "GET", url+"/v1/sessions/"+busy, nil); r.code != http.StatusNotFound {
				return fmt.Errorf("status %d", r.code)
			}
			return nil
		})
	})
	t.Run("lifetime ends a running command", func(t *testing.T) {
		start := time.Now()
		id, _ := newSession(t, url, map[string]any{"max_lifetime_ms": 2000})
		background(t, url, id, map[string]any{"command": []string{"sleep", "100.7"}})
		waitUntil(t, func() bool { return len(sleepers("100.7")) == 1 })
		eventually(t, 15*time.Second, func() error {
			if r := call(t, "GET", url+"/v1/sessions/"+id, nil); r.code != http.StatusNotFound {
				return fmt.Errorf("status %d", r.code)
			}
			return nil
		})
		if d := time.Since(start); d < 2*time.Second {
			t.Fatalf("ended after %v, before its lifetime", d)
		}
		waitUntil(t, func() bool { return len(sleepers("100.7")) == 0 })
	})
	t.Run("above the maxima", func(t *testing.T) {
		expectProblem(t, call(t, "POST", url+"/v1/sessions", map[string]any{"idle_timeout_ms": time.Minute.Milliseconds() + 1}), 422, "body.idle_timeout_ms")
		expectProblem(t, call(t, "POST", url+"/v1/sessions", map[string]any{"max_lifetime_ms": (2 * time.Minute).Milliseconds() + 1}), 422, "body.max_lifetime_ms")
		expectProblem(t, call(t, "POST", url+"/v1/sessions", map[string]any{"idle_timeout_ms": 0}), 422, "body.idle_timeout_ms")
		id, _ := newSession(t, url, nil)
		expectProblem(t, call(t, "PATCH", url+"/v1/sessions/"+id, map[string]any{"idle_timeout_ms": time.Minute.Milliseconds() + 1}), 422, "body.idle_timeout_ms")
		r := call(t, "GET", url+"/v1/sessions/"+id, nil)
		if r.body["idle_timeout_ms"] != float64(30000) || r.body["max_lifetime_ms"] != float64(60000) {
			t.Fatalf("defaults: %s", r.raw)
		}
	})
}

// hostProcess reports whether a process with exactly this argv runs on
// the host (a box's processes are the host's too).
func hostProcess(argv ...string) bool {
	want := strings.Join(argv, "\x00") + "\x00"
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && string(b) == want {
			return true
		}
	}
	return false
}

// hostFile remembers a host file's content and modification time.
type hostFile struct {
	path string
	sum  [32]byte
	mod  time.Time
}

func snapshot(t *testing.T, path string) hostFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return hostFile{path: path, sum: sha256.Sum256(b), mod: st.ModTime()}
}

func (h hostFile) untouched(t *testing.T) {
	t.Helper()
	if now := snapshot(t, h.path); now != h {
		t.Fatalf("host file %s changed", h.path)
	}
}

// File calls never follow a path that a program controls: every path is
// resolved inside the box, beneath /box or /tmp, without symlinks, and
// only regular files are read or written.
func TestSessionFilesUnderAttack(t *testing.T) {
	url, _ := sessionServer(t, testConfig(), session.Config{})
	id, _ := newSession(t, url, nil)
	files := url + "/v1/sessions/" + id + "/files"
	shadow, passwd := snapshot(t, "/etc/shadow"), snapshot(t, "/etc/passwd")
	outside := t.TempDir()
	wantResult(t, command(t, url, id, map[string]any{"shell": "ln -s /etc/shadow evil; ln -s /proc/1/root root; ln -s / up; ln -s " + outside + " out; " +
		"ln -s /dev/zero zero; mkfifo f; mkdir -p real/dir; echo x > real/dir/y"}), "ok", "")

	t.Run("symlinks", func(t *testing.T) {
		for _, p := range []string{"box/evil", "box/root/etc/passwd", "box/up/etc/passwd", "box/out/x", "box/zero"} {
			expectProblem(t, call(t, "GET", files+"/"+p, nil), 422, "path.path")
			expectProblem(t, call(t, "PUT", files+"/"+p, []byte("owned\n")), 422, "path.path")
		}
		expectProblem(t, call(t, "PUT", files+"/box/up/x", []byte("owned\n")), 422, "path.path")
		expectProblem(t, call(t, "PUT", files+"/box/up/new/dir/x", []byte("owned\n")), 422, "path.path")
		expectProblem(t, call(t, "GET", files+"?path=/box/up", nil), 422, "path.path")
		expectProblem(t, call(t, "GET", files+"?path=/box/root/", nil), 422, "path.path")
		shadow.untouched(t)
		for _, p := range []string{"/x", "/new", outside + "/x"} {
			if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s exists on the host: %v", p, err)
			}
		}
		// Deleting a symlink deletes the link, not its target.
		expect(t, call(t, "DELETE", files+"/box/evil", nil), http.StatusNoContent)
		shadow.untouched(t)
	})
	t.Run("special files answer at once", func(t *testing.T) {
		start := time.Now()
		// A FIFO without a reader, then with one waiting in open(2): never
		// read or written, never waited on.
		expectProblem(t, call(t, "GET", files+"/box/f", nil), 422, "path.path")
		expectProblem(t, call(t, "PUT", files+"/box/f", []byte("x")), 422, "path.path")
		reader := background(t, url, id, map[string]any{"shell": "exec cat f"})
		waitUntil(t, func() bool { return hostProcess("cat", "f") })
		expectProblem(t, call(t, "GET", files+"/box/f", nil), 422, "path.path")
		expectProblem(t, call(t, "PUT", files+"/box/f", []byte("x")), 422, "path.path")
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %v", d)
		}
		if r := call(t, "POST", url+"/v1/sessions/"+id+"/commands/"+reader+"/signal", map[string]any{"signal": "SIGKILL"}); r.code != 204 && r.code != 409 {
			t.Fatalf("kill the reader: %d %s", r.code, r.raw)
		}
		if out := finished(t, url, id, reader); field(out, "result", "stdout") != "" {
			t.Fatalf("the FIFO's reader got %v", field(out, "result", "stdout"))
		}
		// A program that runs: its file is not replaced under it.
		wantResult(t, command(t, url, id, map[string]any{"shell": "cp /bin/sleep prog"}), "ok", "")
		prog := background(t, url, id, map[string]any{"command": []string{"./prog", "100.2"}})
		waitUntil(t, func() bool { return hostProcess("./prog", "100.2") })
		expectProblem(t, call(t, "PUT", files+"/box/prog", []byte("#!/bin/sh\n")), 409, "path.path")
		expect(t, call(t, "POST", url+"/v1/sessions/"+id+"/commands/"+prog+"/signal", map[string]any{"signal": "SIGKILL"}), 204)
		finished(t, url, id, prog)
		if e, err := testReg.Lookup("python"); err == nil && e.Available {
			wantResult(t, command(t, url, id, map[string]any{"command": []string{"/usr/bin/python3", "-c",
				"import socket; socket.socket(socket.AF_UNIX).bind('/box/sock')"}}), "ok", "")
			expectProblem(t, call(t, "GET", files+"/box/sock", nil), 422, "path.path")
			expectProblem(t, call(t, "PUT", files+"/box/sock", []byte("x")), 422, "path.path")
			r := call(t, "GET", files+"?path=/box", nil)
			if entries(r)["sock"] != "socket" {
				t.Fatalf("listing: %s", r.raw)
			}
			expect(t, call(t, "DELETE", files+"/box/sock", nil), 204)
		}
	})
	t.Run("outside /box and /tmp", func(t *testing.T) {
		for _, tc := range []struct {
			path   string
			status int
		}{
			{"etc/passwd", 422}, {"dev/zero", 422}, {"proc/self/environ", 422}, {"box%2f..%2f..%2fetc%2fpasswd", 422},
			// Go's mux redirects a path with dot segments to its clean
			// form (the client follows): files/etc/passwd names no box
			// path (422), …/etc/passwd no route (404).
			{"box/../etc/passwd", 422}, {"tmp/../../etc/passwd", 404},
			// Escaped, they reach the box, which refuses to leave /box.
			{"box/%2e%2e/etc/passwd", 422}, {"box/..%2f..%2fetc%2fpasswd", 422}, {"tmp/%2e%2e/%2e%2e/etc/passwd", 422},
		} {
			for _, method := range []string{"GET", "PUT"} {
				r := call(t, method, files+"/"+tc.path, []byte("owned"))
				if r.code == http.StatusOK || r.code == http.StatusNoContent || bytes.Contains(r.raw, []byte("root:")) {
					t.Fatalf("%s files/%s: %d %.200s", method, tc.path, r.code, r.raw)
				}
				if tc.status == 404 {
					expect(t, r, 404)
					continue
				}
				expectProblem(t, r, tc.status, "path.path")
			}
		}
		passwd.untouched(t)
		for _, p := range []string{"/etc", "/", "/box/../etc", "/proc", "/dev", "../..", "/tmp/..", "/tmp/../etc"} {
			expectProblem(t, call(t, "GET", files+"?path="+p, nil), 422, "path.path")
		}
		// A device node: the box can make none, and reaches none.
		res := command(t, url, id, map[string]any{"shell": "mknod /box/nul c 1 3 2>/dev/null || echo refused"})
		wantResult(t, res, "ok", "refused\n")
		expectProblem(t, call(t, "GET", files+"/box/nul", nil), 404, "path.path")
	})
	t.Run("a swapped directory", func(t *testing.T) {
		// d is a directory, then a symlink to /, to /etc, to /proc/1/root
		// and to a host directory, as fast as the box can.
		cid := background(t, url, id, map[string]any{"shell": "while :; do rm -rf d; mkdir d; rm -rf d; ln -s / d; rm -f d; ln -s /etc d; rm -f d; " +
			"ln -s /proc/1/root d; rm -f d; ln -s " + outside + " d; rm -f d; mkdir d; mv d e; ln -s / d; mv -T e d 2>/dev/null; rm -rf e; done",
			"limits": map[string]any{"wall_time_ms": 60000}})
		var mu sync.Mutex
		counts := map[string]int{}
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 50 {
					method, body := "PUT", any([]byte("race\n"))
					if i%2 == 1 {
						method, body = "GET", nil
					}
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					r, err := send(ctx, method, files+"/box/d/x", body)
					cancel()
					if err != nil {
						errs <- err
						return
					}
					// A GET that meets a PUT under way reads the file
					// it is writing: a prefix of it.
					ok := r.code == 404 || r.code == 422 || method == "PUT" && r.code == 204 || method == "GET" && r.code == 200 && strings.HasPrefix("race\n", string(r.raw))
					if !ok {
						errs <- fmt.Errorf("worker %d: %s: %d %.200s", w, method, r.code, r.raw)
					}
					mu.Lock()
					counts[fmt.Sprintf("%s %d", method, r.code)]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		expect(t, call(t, "POST", url+"/v1/sessions/"+id+"/commands/"+cid+"/signal", map[string]any{"signal": "SIGKILL"}), http.StatusNoContent)
		finished(t, url, id, cid)
		t.Logf("answers: %v", counts)
		for _, p := range []string{"/x", "/etc/x", outside + "/x"} {
			if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s exists on the host: %v", p, err)
			}
		}
		passwd.untouched(t)
	})
	t.Run("sizes", func(t *testing.T) {
		max := testConfig().MaxFilesBytes
		expectProblem(t, call(t, "PUT", files+"/box/big", bytes.Repeat([]byte("a"), int(max)+1)), 413, "body")
		// Without a Content-Length, the body is cut at the bound.
		expectProblem(t, call(t, "PUT", files+"/box/big", io.MultiReader(bytes.NewReader(make([]byte, max)), strings.NewReader("!"))), 413, "body")
		expect(t, call(t, "PUT", files+"/box/big", bytes.Repeat([]byte("a"), int(max))), http.StatusNoContent)
		expect(t, call(t, "GET", files+"/box/big", nil), http.StatusOK)
		wantResult(t, command(t, url, id, map[string]any{"shell": fmt.Sprintf("head -c %d /dev/zero > /box/big", max+1)}), "ok", "")
		expectProblem(t, call(t, "GET", files+"/box/big", nil), 413, "path.path")

		small, _ := newSession(t, url, map[string]any{"limits": map[string]any{"disk_bytes": 1 << 20, "file_size_bytes": 128 << 10}})
		sfiles := url + "/v1/sessions/" + small + "/files"
		expectProblem(t, call(t, "PUT", sfiles+"/box/too-big", make([]byte, 200<<10)), 413, "path.path")
		full := 0
		for i := range 16 {
			r := call(t, "PUT", fmt.Sprintf("%s/box/f%d", sfiles, i), make([]byte, 100<<10))
			if r.code == http.StatusInsufficientStorage {
				expectProblem(t, r, 507, "path.path")
				full = i
				break
			}
			expect(t, r, http.StatusNoContent)
		}
		if full < 5 {
			t.Fatalf("disk full after %d files of 100 KiB in 1 MiB", full)
		}
		expect(t, call(t, "DELETE", sfiles+"/box/f0", nil), http.StatusNoContent)
		expect(t, call(t, "PUT", sfiles+"/box/again", make([]byte, 50<<10)), http.StatusNoContent)
	})
	t.Run("made directories belong to the box", func(t *testing.T) {
		expect(t, call(t, "PUT", files+"/box/n1/n2/n3.sh?mode=755", []byte("#!/bin/sh\necho ran\n")), http.StatusNoContent)
		res := command(t, url, id, map[string]any{"shell": "stat -c '%U %a %F' n1 n1/n2 n1/n2/n3.sh; id -un; ./n1/n2/n3.sh"})
		user, _, _ := strings.Cut(res["stdout"].(string), " ")
		if user == "root" || user == "" {
			t.Fatalf("owner %q", user)
		}
		wantResult(t, res, "ok", fmt.Sprintf("%[1]s 755 directory\n%[1]s 755 directory\n%[1]s 755 regular file\n%[1]s\nran\n", user))
		expect(t, call(t, "PUT", files+"/tmp/t.txt", []byte("in tmp")), http.StatusNoContent)
		wantResult(t, command(t, url, id, map[string]any{"command": []string{"cat", "/tmp/t.txt"}}), "ok", "in tmp")
		expectProblem(t, call(t, "PUT", files+"/box/m?mode=999", []byte("x")), 422, "query.mode")
		expectProblem(t, call(t, "PUT", files+"/box/m?mode=1777", []byte("x")), 422, "query.mode")
		expectProblem(t, call(t, "DELETE", files+"/box/n1", nil), 409, "path.path")
		expectProblem(t, call(t, "GET", files+"/box/n1", nil), 422, "path.path")
		expect(t, call(t, "DELETE", files+"/box/n1/n2/n3.sh", nil), http.StatusNoContent)
		expectProblem(t, call(t, "GET", files+"/box/n1/n2/n3.sh", nil), 404, "path.path")
		expectProblem(t, call(t, "DELETE", files+"/box/n1/n2/n3.sh", nil), 404, "path.path")
		r := call(t, "GET", files+"?path=/box", nil)
		expect(t, r, http.StatusOK)
		got := entries(r)
		want := map[string]string{"root": "symlink", "up": "symlink", "out": "symlink", "zero": "symlink", "f": "fifo", "real": "dir", "big": "file", "n1": "dir"}
		for name, typ := range want {
			if got[name] != typ {
				t.Errorf("%s: %q, want %s (listing %v)", name, got[name], typ, got)
			}
		}
		names := make([]string, 0, len(got))
		for n := range got {
			names = append(names, n)
		}
		sort.Strings(names)
		t.Logf("listing: %v", names)
	})
}
