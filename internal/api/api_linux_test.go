package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/boxtest"
	"github.com/runbox-dev/runbox/internal/env"
	"github.com/runbox-dev/runbox/internal/runner"
)

var (
	testEnv    *boxtest.Env
	skipReason string
	testReg    *env.Registry
)

func TestMain(m *testing.M) {
	os.Exit(boxtest.Main(m, func(be *boxtest.Env, reason string) error {
		testEnv, skipReason = be, reason
		if be == nil {
			return nil
		}
		var err error
		if testReg, err = env.Load(env.Defaults()); err == nil {
			testReg.Detect(context.Background(), runner.VersionRunner(be.Jail))
		}
		return err
	}))
}

func testConfig() Config {
	return Config{
		Version: "test", CgroupVersion: "v1",
		Defaults: runner.DefaultLimits,
		Maxima:   runner.Limits{WallTime: time.Minute, CPUTime: time.Minute, Memory: 2 << 30, Processes: 512, FileSize: 256 << 20, OpenFiles: 4096, Output: 16 << 20, Disk: 1 << 30, Stack: runner.DefaultLimits.Stack},
		MaxBoxes: 2, QueueLength: 64, QueueTimeout: 30 * time.Second,
		MaxBodyBytes: 1 << 20, MaxFiles: 8, MaxFilesBytes: 256 << 10, MaxCases: 16, CacheBytes: 64 << 20,
		MaxConnections: 64, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 30 * time.Second,
		MaxResponseBytes: 64 << 20, MemoryBudget: 256 << 20,
	}
}

// server starts the API on a real listener, as runbox serve does.
func server(t *testing.T, cfg Config) string {
	t.Helper()
	if testEnv == nil {
		t.Skip(skipReason)
	}
	url, _ := serveWith(t, cfg, runner.New(testEnv.Jail, testReg, runner.NewCache(cfg.CacheBytes, time.Hour)), testReg)
	return url
}

// serveWith serves an API over r on 127.0.0.1 until the test ends.
func serveWith(t testing.TB, cfg Config, r Runner, reg *env.Registry) (string, *Server) {
	t.Helper()
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	s := New(cfg, r, reg, NewMetrics(nil), slog.New(slog.DiscardHandler))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		http.DefaultClient.CloseIdleConnections()
	})
	return "http://" + ln.Addr().String(), s
}

func post(t *testing.T, url string, body any) (int, map[string]any, http.Header) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url+"/v1/run", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("status %d, not JSON: %s", resp.StatusCode, raw)
	}
	return resp.StatusCode, out, resp.Header
}

func field(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			i, _ := strconv.Atoi(p)
			if i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func TestConformanceOverHTTP(t *testing.T) {
	url := server(t, testConfig())
	for _, e := range testReg.List() {
		t.Run(e.Name, func(t *testing.T) {
			if !e.Available {
				t.Skipf("requires the %s toolchain: %s", e.Name, e.Reason)
			}
			req := runner.ConformanceRequest(e)
			var files []map[string]string
			for _, f := range req.Files {
				files = append(files, map[string]string{"name": f.Name, "content": string(f.Content)})
			}
			code, out, _ := post(t, url, map[string]any{"language": e.Name, "main": req.Main, "files": files,
				"stdin": string(req.Stdin), "args": req.Args})
			if code != 200 || field(out, "run", "stdout") != "OK\n" {
				t.Fatalf("%d %v", code, out)
			}
			if e.Compiled() && field(out, "compile", "status") != "ok" {
				t.Fatalf("compile %v", out["compile"])
			}
		})
	}
}

func TestCompileCasesCacheOutputs(t *testing.T) {
	url := server(t, testConfig())
	src := "#include <stdio.h>\nint main(){int x; scanf(\"%d\",&x); printf(\"%d\\n\", x+1);}"
	body := map[string]any{"language": "c", "files": []map[string]string{{"name": "main.c", "content": src}},
		"cases": []map[string]any{{"stdin": "1", "expected_output": "2"}, {"stdin": "5", "expected_output": "7"}}}
	code, out, _ := post(t, url, body)
	if code != 200 || field(out, "cases", "0", "verdict") != "accepted" || field(out, "cases", "1", "verdict") != "wrong_answer" || out["cached"] != false {
		t.Fatalf("%d %v", code, out)
	}
	code, out, _ = post(t, url, body)
	if code != 200 || out["cached"] != true {
		t.Fatalf("second request not served from the cache: %d %v", code, out["cached"])
	}
	code, out, _ = post(t, url, map[string]any{"language": "c", "files": []map[string]string{{"name": "main.c", "content": "int main( {"}}})
	if code != 200 || field(out, "compile", "status") == "ok" || out["run"] != nil {
		t.Fatalf("compile error: %d %v", code, out)
	}
	code, out, _ = post(t, url, map[string]any{"command": []string{"/bin/sh", "-c", "mkdir o; echo hi > o/a.txt; ln -s /etc/passwd o/b.txt; mkfifo o/c.txt"},
		"outputs": []string{"o/*.txt"}})
	files, _ := out["files"].([]any)
	if code != 200 || len(files) != 1 || field(out, "files", "0", "name") != "o/a.txt" || field(out, "files", "0", "content") != "aGkK" {
		t.Fatalf("outputs: %d %v", code, out["files"])
	}
}

func TestBadInput(t *testing.T) {
	url := server(t, testConfig())
	file := func(name string) []map[string]string { return []map[string]string{{"name": name, "content": "x"}} }
	cases := []struct {
		name     string
		body     any
		status   int
		location string
	}{
		{"unknown language", map[string]any{"language": "intercal", "files": file("a")}, 422, "body.language"},
		{"neither language nor command", map[string]any{"files": file("a")}, 422, "body.language"},
		{"both", map[string]any{"language": "py", "command": []string{"true"}, "files": file("a")}, 422, "body.command"},
		{"traversal", map[string]any{"language": "py", "files": file("../x")}, 422, "body.files[0].name"},
		{"inner traversal", map[string]any{"language": "py", "files": file("a/../../x")}, 422, "body.files[0].name"},
		{"absolute", map[string]any{"language": "py", "files": file("/etc/x")}, 422, "body.files[0].name"},
		{"NUL in name", map[string]any{"language": "py", "files": file("a\x00b")}, 422, "body.files[0].name"},
		{"empty element", map[string]any{"language": "py", "files": file("a//b")}, 422, "body.files[0].name"},
		{"duplicate", map[string]any{"language": "py", "files": []map[string]string{{"name": "a", "content": ""}, {"name": "a", "content": ""}}}, 422, "body.files[1].name"},
		{"file and directory", map[string]any{"language": "py", "files": []map[string]string{{"name": "a", "content": ""}, {"name": "a/b", "content": ""}}}, 422, "body.files[1].name"},
		{"directory then file", map[string]any{"language": "py", "files": []map[string]string{{"name": "a/b", "content": ""}, {"name": "a", "content": ""}}}, 422, "body.files[1].name"},
		{"too many files", map[string]any{"language": "py", "files": func() (fs []map[string]string) {
			for i := 0; i < 9; i++ {
				fs = append(fs, map[string]string{"name": fmt.Sprint(i), "content": ""})
			}
			return
		}()}, 422, "body.files"},
		{"files too large", map[string]any{"language": "py", "files": []map[string]string{{"name": "a", "content": strings.Repeat("x", 300<<10)}}}, 422, "body.files[0].content"},
		{"invalid base64", map[string]any{"language": "py", "files": []map[string]string{{"name": "a", "content": "%%%", "encoding": "base64"}}}, 422, "body.files[0].content"},
		{"bad encoding", map[string]any{"language": "py", "files": []map[string]string{{"name": "a", "content": "", "encoding": "rot13"}}}, 422, "body.files[0].encoding"},
		{"main not a file", map[string]any{"language": "py", "files": file("a"), "main": "b"}, 422, "body.main"},
		{"unknown field", map[string]any{"language": "py", "files": file("a"), "timeout": 3}, 422, "body.timeout"},
		{"negative limit", map[string]any{"language": "py", "files": file("a"), "limits": map[string]any{"memory_bytes": -1}}, 422, "body.limits.memory_bytes"},
		{"zero limit", map[string]any{"language": "py", "files": file("a"), "limits": map[string]any{"wall_time_ms": 0}}, 422, "body.limits.wall_time_ms"},
		{"non-integer limit", map[string]any{"language": "py", "files": file("a"), "limits": map[string]any{"processes": 2.5}}, 422, "body.limits.processes"},
		{"string limit", map[string]any{"language": "py", "files": file("a"), "limits": map[string]any{"processes": "lots"}}, 422, "body.limits.processes"},
		{"limit above the maximum", map[string]any{"language": "py", "files": file("a"), "limits": map[string]any{"wall_time_ms": 3600000}}, 422, "body.limits.wall_time_ms"},
		{"compile limit above the maximum", map[string]any{"language": "c", "files": file("a.c"), "compile_limits": map[string]any{"memory_bytes": 1 << 40}}, 422, "body.compile_limits.memory_bytes"},
		{"NUL in an argument", map[string]any{"command": []string{"echo"}, "args": []string{"a\x00"}}, 422, "body.args[0]"},
		{"bad env name", map[string]any{"command": []string{"env"}, "env": map[string]string{"A=B": "c"}}, 422, "body.env.A=B"},
		{"bad output pattern", map[string]any{"command": []string{"true"}, "outputs": []string{"../*"}}, 422, "body.outputs[0]"},
		{"too many cases", map[string]any{"language": "py", "files": file("a"), "cases": func() (cs []map[string]any) {
			for range 17 {
				cs = append(cs, map[string]any{})
			}
			return
		}()}, 422, "body.cases"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, _ := post(t, url, tc.body)
			if code != tc.status {
				t.Fatalf("status %d, want %d: %v", code, tc.status, out)
			}
			if field(out, "errors", "0", "location") != tc.location {
				t.Fatalf("location %v, want %s: %v", field(out, "errors", "0", "location"), tc.location, out)
			}
			if id, _ := out["request_id"].(string); id == "" {
				t.Fatalf("no request_id in %v", out)
			}
		})
	}
	t.Run("raw bodies", func(t *testing.T) {
		for _, rc := range []struct {
			name, ctype, body string
			method            string
			status            int
		}{
			{"malformed JSON", "application/json", `{"language":`, "POST", 400},
			{"deeply nested JSON", "application/json", strings.Repeat("[", 10000) + strings.Repeat("]", 10000), "POST", 422},
			{"wrong content type", "text/plain", `{}`, "POST", 415},
			{"body over the maximum", "application/json", `{"stdin":"` + strings.Repeat("a", 2<<20) + `"}`, "POST", 413},
			{"wrong method", "application/json", `{}`, "DELETE", 405},
		} {
			req, _ := http.NewRequest(rc.method, url+"/v1/run", strings.NewReader(rc.body))
			req.Header.Set("Content-Type", rc.ctype)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != rc.status {
				t.Errorf("%s: status %d, want %d", rc.name, resp.StatusCode, rc.status)
			}
		}
	})
	t.Run("names reach the program verbatim", func(t *testing.T) {
		code, out, _ := post(t, url, map[string]any{"command": []string{"/bin/sh", "-c", `printf '%s|' "$@"; ls`, "sh"},
			"args": []string{"$(id)", "; rm -rf /", "a b"}, "files": file("-n; $(x)")})
		if code != 200 || field(out, "run", "stdout") != "$(id)|; rm -rf /|a b|-n; $(x)\n" {
			t.Fatalf("%d %v", code, field(out, "run", "stdout"))
		}
	})
}

// 200 requests at concurrency 32 on 2 boxes: every request gets its own
// correct answer or a 429 with Retry-After, none is lost, and nothing is
// left behind. With a queue as deep as the clients, all are served; with a
// short one, some are turned away.
func TestLoad(t *testing.T) {
	for _, tc := range []struct {
		name     string
		queue    int
		allServe bool
	}{
		{"queue deep enough", 32, true},
		{"short queue", 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.QueueLength, cfg.QueueTimeout = tc.queue, 30*time.Second
			counts := load(t, server(t, cfg), 200, 32)
			if counts[200]+counts[429] != 200 || counts[200] == 0 {
				t.Fatalf("answers %v for 200 requests", counts)
			}
			if tc.allServe && counts[200] != 200 {
				t.Fatalf("answers %v: with room in the queue every request must be served", counts)
			}
			if !tc.allServe && counts[429] == 0 {
				t.Fatalf("answers %v: a short queue must turn some away", counts)
			}
			t.Logf("answers: %v", counts)
			assertNoBoxes(t)
		})
	}
}

func load(t *testing.T, url string, total, conc int) map[int]int {
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	work := make(chan int)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				token := fmt.Sprintf("token-%d", i)
				b, _ := json.Marshal(map[string]any{"command": []string{"/bin/echo", token}})
				resp, err := http.Post(url+"/v1/run", "application/json", bytes.NewReader(b))
				if err != nil {
					t.Errorf("request %d: %v", i, err)
					continue
				}
				var out map[string]any
				json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				switch resp.StatusCode {
				case 200:
					if field(out, "run", "stdout") != token+"\n" {
						t.Errorf("request %d got someone else's answer: %v", i, field(out, "run", "stdout"))
					}
				case 429:
					if resp.Header.Get("Retry-After") == "" {
						t.Errorf("429 without Retry-After")
					}
				default:
					t.Errorf("request %d: status %d %v", i, resp.StatusCode, out)
				}
				mu.Lock()
				counts[resp.StatusCode]++
				mu.Unlock()
			}
		}()
	}
	for i := range total {
		work <- i
	}
	close(work)
	wg.Wait()
	return counts
}

func TestClientDisconnectKillsTheBox(t *testing.T) {
	url := server(t, testConfig())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b, _ := json.Marshal(map[string]any{"command": []string{"sleep", "37.5"}})
		req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/run", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	waitUntil(t, func() bool { return len(sleepers("37.5")) > 0 })
	cancel()
	<-done
	waitUntil(t, func() bool { return len(sleepers("37.5")) == 0 })
	// The server is still up.
	code, out, _ := post(t, url, map[string]any{"command": []string{"true"}})
	if code != 200 || field(out, "run", "status") != "ok" {
		t.Fatalf("%d %v", code, out)
	}
}

func TestMetaEndpoints(t *testing.T) {
	url := server(t, testConfig())
	post(t, url, map[string]any{"command": []string{"true"}})
	for path, want := range map[string]string{
		"/healthz": `"ok"`, "/v1/info": `"max_boxes":2`, "/v1/environments": `"name":"python"`,
		"/metrics": `runbox_runs_total{language="command",status="ok"} 1`, "/openapi.json": `"/v1/run"`,
	} {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s: %d, missing %q", path, resp.StatusCode, want)
		}
		if resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("%s: no X-Request-Id", path)
		}
	}
}

func waitUntil(t *testing.T, cond func() bool) { boxtest.WaitUntil(t, 10*time.Second, cond) }

// sleepers returns the pids of `sleep arg` processes.
func sleepers(arg string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && string(b) == "sleep\x00"+arg+"\x00" {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// assertNoBoxes checks no process of this test's boxes is left.
func assertNoBoxes(t *testing.T) {
	t.Helper()
	ours := "/" + testEnv.Config.CgroupPrefix + strconv.Itoa(os.Getpid()) + "-"
	waitUntil(t, func() bool {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			if _, err := strconv.Atoi(e.Name()); err != nil || e.Name() == strconv.Itoa(os.Getpid()) {
				continue
			}
			if b, err := os.ReadFile("/proc/" + e.Name() + "/cgroup"); err == nil && strings.Contains(string(b), ours+"") && strings.Contains(string(b), "/box-") {
				return false
			}
		}
		return true
	})
}
