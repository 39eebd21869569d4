package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/env"
	"github.com/runbox-dev/runbox/internal/result"
	"github.com/runbox-dev/runbox/internal/runner"
)

// fakeRunner answers without boxes: the run's stdout is the request's
// stdin, and each case's the case's stdin.
type fakeRunner struct{}

func (fakeRunner) Run(ctx context.Context, req runner.Request) (*runner.Response, error) {
	resp := &runner.Response{Language: req.Language, Version: "fake 1"}
	if len(req.Cases) > 0 {
		for _, c := range req.Cases {
			resp.Cases = append(resp.Cases, runner.CaseResult{Result: runner.Result{Status: runner.StatusOK, Stdout: c.Stdin}, Verdict: "accepted"})
		}
		return resp, nil
	}
	resp.Run = &runner.Result{Status: runner.StatusOK, Stdout: req.Stdin}
	resp.Files = append(resp.Files, req.Files...)
	return resp, nil
}

var _ Runner = fakeRunner{}

func fakeConfig() Config {
	return Config{
		Version: "test", CgroupVersion: "v1",
		Defaults: runner.DefaultLimits,
		Maxima:   runner.Limits{WallTime: time.Minute, CPUTime: time.Minute, Memory: 2 << 30, Processes: 512, FileSize: 256 << 20, OpenFiles: 4096, Output: 16 << 20, Disk: 1 << 30, Stack: runner.DefaultLimits.Stack},
		MaxBoxes: 2, QueueLength: 8, QueueTimeout: time.Second,
		MaxBodyBytes: 64 << 10, MaxFiles: 8, MaxFilesBytes: 32 << 10, MaxCases: 8, CacheBytes: 1 << 20,
		MaxConnections: 8, ReadTimeout: time.Second, WriteTimeout: time.Second, IdleTimeout: time.Second,
		MaxResponseBytes: 64 << 20, MemoryBudget: 128 << 20,
	}
}

func fakeServer(t testing.TB) *Server { return fakeServerWith(t, fakeRunner{}) }

func fakeServerWith(t testing.TB, r Runner) *Server {
	t.Helper()
	reg, err := env.Load(env.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range reg.List() {
		e.Available, e.VersionText = true, "fake 1"
	}
	return New(fakeConfig(), r, reg, NewMetrics(nil), slog.New(slog.DiscardHandler))
}

// failingRunner fails every run with err.
type failingRunner struct{ err error }

func (f failingRunner) Run(context.Context, runner.Request) (*runner.Response, error) {
	return nil, f.err
}

// What the jail refuses because of the request is the client's fault: a
// 422 naming the field, never a 500.
func TestJailRefusalsAre422(t *testing.T) {
	for _, tc := range []struct {
		name, body, location string
		err                  error
		status               int
	}{
		{"workspace full", `{"command":["true"],"files":[{"name":"a","content":"x"}]}`, "body.files",
			fmt.Errorf("box 3: %w", runner.ErrWorkspaceFull), 422},
		{"argv too large", `{"command":["echo"],"args":["aaaaaaaaaaaa","b"]}`, "body.args", fmt.Errorf("box 3: %w", runner.ErrSpecTooLarge), 422},
		{"environment too large", `{"command":["env"],"env":{"A":"bbbbbbbb"}}`, "body.env", fmt.Errorf("%w", runner.ErrSpecTooLarge), 422},
		{"case args too large", `{"command":["echo"],"cases":[{},{"args":["aaaaaaaaaaaaaaaaaaaa"]}]}`, "body.cases[1].args", runner.ErrSpecTooLarge, 422},
		{"option-like stem", `{"language":"java","files":[{"name":"Main.java","content":""}]}`, "body.files[0].name", env.ErrUnsafeStem, 422},
		{"runbox itself", `{"command":["true"]}`, "", errors.New("spawner gone"), 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, "/v1/run", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			fakeServerWith(t, failingRunner{tc.err}).Handler().ServeHTTP(rec, req)
			var p map[string]any
			_ = json.Unmarshal(rec.Body.Bytes(), &p)
			loc := ""
			if errs, _ := p["errors"].([]any); len(errs) > 0 {
				loc, _ = errs[0].(map[string]any)["location"].(string)
			}
			if rec.Code != tc.status || loc != tc.location || p["request_id"] == nil {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
		})
	}
}

// FuzzRunRequest: whatever the body, the answer is a 200 with a JSON
// object or a 4xx problem+json with a request id; never a 5xx, never a
// panic, and nothing stays reserved afterwards.
func FuzzRunRequest(f *testing.F) {
	for _, seed := range []string{
		`{"language":"python","files":[{"name":"main.py","content":"print(1)"}],"stdin":"x"}`,
		`{"command":["/bin/echo","hi"],"args":["a"],"env":{"A":"b"},"outputs":["o/**"]}`,
		`{"language":"c","files":[{"name":"-fplugin=./p.c","content":"x"},{"name":"main.c","content":""}],"main":"main.c"}`,
		`{"language":"java","files":[{"name":"-version.java","content":""}]}`,
		`{"command":["true"],"cases":[{"stdin":"1","args":["x"],"expected_output":"1"},{}]}`,
		`{"command":["true"],"limits":{"disk_bytes":65536,"output_bytes":1},"files":[{"name":"a","content":"QUJD","encoding":"base64"}]}`,
		`{"command":["true"],"cases":[` + strings.Repeat(`{},`, 20) + `{}]}`,
		`{"language":`, `[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]`, `"\u0000"`, `{"command":["\ud800"]}`,
		`{"command":["x"],"files":[{"name":"a/b","content":""},{"name":"a","content":""}]}`,
	} {
		f.Add([]byte(seed))
	}
	s := fakeServer(f)
	h := s.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v1/run", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch {
		case rec.Code == http.StatusOK:
			var out RunResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatalf("200 with a body that is not a RunResponse: %v\n%s", err, rec.Body)
			}
		case rec.Code >= 400 && rec.Code < 500:
			var p map[string]any
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("%d with Content-Type %q", rec.Code, ct)
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p["request_id"] == "" {
				t.Fatalf("%d: not a problem with a request id: %v\n%s", rec.Code, err, rec.Body)
			}
		default:
			t.Fatalf("status %d for %q:\n%s", rec.Code, body, rec.Body)
		}
		if n := s.budget.inUse(); n != 0 {
			t.Fatalf("%d bytes still reserved after the answer", n)
		}
	})
}

func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"main.c", "a/b/c", "../x", "a/../b", "/etc/passwd", "a//b", "./a", "a/.", "a\x00", "a\\b", "\xff", strings.Repeat("d/", 20) + "f", "-fplugin=./p.c", "@opts"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if checkName(name) != "" {
			return
		}
		// An accepted name is a clean relative path inside the workspace.
		if !utf8Valid(name) || strings.ContainsRune(name, 0) || name != cleanRel(name) {
			t.Fatalf("accepted %q", name)
		}
	})
}

func FuzzCheckPattern(f *testing.F) {
	for _, s := range []string{"**", "o/**", "o/*.txt", "../*", "[", "a/[b-", "/x", "a/**/b", "\\*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if checkPattern(p) != "" {
			return
		}
		if strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
			t.Fatalf("accepted %q", p)
		}
		for _, el := range strings.Split(p, "/") {
			if el == ".." {
				t.Fatalf("accepted %q", p)
			}
		}
	})
}

// FuzzScanJSON: the count is an upper bound of the values encoding/json
// decodes, and the depth check agrees with the real nesting.
func FuzzScanJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,2,{"b":"c,:[{"}]}`, `"\"[["`, `[[[[]]]]`, `{"a":"\\"}`, `[1,`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			scanJSON(b, 1<<30, 1<<30) // must not panic
			return
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return // deeper than encoding/json's own limit
		}
		n, depth := countJSON(v)
		got, rule := scanJSON(b, 1<<30, depth)
		if rule != "" || got < n {
			t.Fatalf("scanJSON(%q) = %d, %q; the value has %d values, depth %d", b, got, rule, n, depth)
		}
		if depth > 0 {
			if _, rule := scanJSON(b, 1<<30, depth-1); rule == "" {
				t.Fatalf("scanJSON(%q) missed depth %d", b, depth)
			}
		}
	})
}

func countJSON(v any) (values, depth int) {
	switch x := v.(type) {
	case []any:
		values, depth = 1, 1
		for _, e := range x {
			n, d := countJSON(e)
			values += n
			depth = max(depth, d+1)
		}
	case map[string]any:
		values, depth = 1, 1
		for _, e := range x {
			n, d := countJSON(e)
			values += n
			depth = max(depth, d+1)
		}
	default:
		values = 1
	}
	return values, depth
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "") == s }

func cleanRel(s string) string {
	for _, el := range strings.Split(s, "/") {
		if el == "" || el == "." || el == ".." {
			return ""
		}
	}
	return s
}

// The streamed answer says exactly what marshalling the RunResponse type
// says, so the OpenAPI schema describes what clients get.
func TestStreamedAnswerMatchesSchemaType(t *testing.T) {
	sig := 9
	for name, r := range map[string]*runner.Response{
		"run and files": {Language: "c", Version: "gcc 12", Cached: true,
			Compile: &runner.Result{Status: runner.StatusOK, Stderr: []byte("warning\n")},
			Run:     &runner.Result{Status: "runtime_error", ExitCode: 3, Stdout: []byte("a\xffb"), WallTime: time.Second},
			Files:   []runner.File{{Name: "a\xff", Content: []byte{1, 2}}, {Name: "a\xfe", Content: []byte{}}, {Name: "o/ok.txt", Content: []byte("hi")}}, FilesTruncated: true},
		"cases": {Cases: []runner.CaseResult{{Result: runner.Result{Status: "time_limit", Signal: sig, ExitCode: -1}, Verdict: "time_limit"},
			{Result: runner.Result{Status: runner.StatusOK, Stdout: []byte("\"<&>\"\n")}, Verdict: "accepted"}}},
		"nothing": {},
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			w := result.NewWriter(&buf)
			encodeRun(w, r)
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			want, _ := json.Marshal(toResponse(r))
			var g, wv any
			if err := json.Unmarshal(buf.Bytes(), &g); err != nil {
				t.Fatalf("%v\n%s", err, buf.Bytes())
			}
			_ = json.Unmarshal(want, &wv)
			if !reflect.DeepEqual(g, wv) {
				t.Fatalf("streamed %s\nmarshalled %s", buf.Bytes(), want)
			}
		})
	}
}

// toResponse builds the RunResponse a streamed answer must equal.
func toResponse(r *runner.Response) RunResponse {
	out := RunResponse{Language: r.Language, Version: r.Version, Cached: r.Cached, FilesTruncated: r.FilesTruncated}
	if r.Compile != nil {
		c := result.From(*r.Compile)
		out.Compile = &c
	}
	if r.Run != nil {
		c := result.From(*r.Run)
		out.Run = &c
	}
	for _, c := range r.Cases {
		out.Cases = append(out.Cases, CaseResult{Result: result.From(c.Result), Verdict: c.Verdict})
	}
	for _, f := range r.Files {
		name, b64 := result.Text([]byte(f.Name))
		out.Files = append(out.Files, FileOut{Name: name, NameBase64: b64, Size: len(f.Content), Content: f.Content})
	}
	return out
}

// Settings the server cannot work with are refused.
func TestConfigCheck(t *testing.T) {
	if err := fakeConfig().Check(); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*Config){
		"files above the ceiling": func(c *Config) { c.MaxFiles = MaxFilesCeiling + 1 },
		"no connections":          func(c *Config) { c.MaxConnections = 0 },
		"no read timeout":         func(c *Config) { c.ReadTimeout = 0 },
		"budget below a body":     func(c *Config) { c.MemoryBudget = 3 * c.MaxBodyBytes },
		"budget below a response": func(c *Config) { c.MemoryBudget = c.MaxResponseBytes },
	} {
		c := fakeConfig()
		change(&c)
		if c.Check() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
