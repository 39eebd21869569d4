package api

// Clients that try to wedge or balloon the server, over a real listener
// with the real jail. Loops are bounded in count, waits in time.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/runner"
)

// postRaw posts a body as it is.
func postRaw(t *testing.T, url string, body []byte) (int, map[string]any, http.Header) {
	t.Helper()
	resp, err := http.Post(url+"/v1/run", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("status %d, not JSON: %.300s", resp.StatusCode, raw)
	}
	return resp.StatusCode, out, resp.Header
}

// wantProblem checks a 4xx problem naming location.
func wantProblem(t *testing.T, code int, out map[string]any, status int, location string) {
	t.Helper()
	if code != status || field(out, "errors", "0", "location") != location {
		t.Fatalf("status %d location %v, want %d %s: %v", code, field(out, "errors", "0", "location"), status, location, out)
	}
	if id, _ := out["request_id"].(string); id == "" {
		t.Fatalf("no request_id in %v", out)
	}
}

func TestWorkBeforeAdmission(t *testing.T) {
	t.Run("a body of many values is refused before it is decoded", func(t *testing.T) {
		url := server(t, testConfig())
		// 150,000 cases in 450 KB: huma would build a map per case.
		body := []byte(`{"command":["true"],"cases":[` + strings.Repeat(`{},`, 150_000) + `{}]}`)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		code, out, _ := postRaw(t, url, body)
		runtime.ReadMemStats(&after)
		wantProblem(t, code, out, 422, "body")
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("a %d-byte body of %d values: %d bytes allocated", len(body), 150_000, alloc)
		if alloc > 8*uint64(len(body))+(4<<20) {
			t.Fatalf("%d bytes allocated to refuse a %d-byte body", alloc, len(body))
		}
	})
	t.Run("every list and map has a maximum", func(t *testing.T) {
		cfg := testConfig()
		cfg.MaxFiles = MaxFilesCeiling // the schema's ceiling is what refuses
		url := server(t, cfg)
		envs := map[string]string{}
		for i := range 129 {
			envs[fmt.Sprintf("V%d", i)] = "x"
		}
		code, out, _ := post(t, url, map[string]any{"command": []string{"true"}, "env": envs})
		wantProblem(t, code, out, 422, "body.env")
		var files []map[string]string
		for i := range MaxFilesCeiling + 1 {
			files = append(files, map[string]string{"name": fmt.Sprint(i), "content": ""})
		}
		code, out, _ = post(t, url, map[string]any{"command": []string{"true"}, "files": files})
		wantProblem(t, code, out, 422, "body.files")
	})
	t.Run("worst-case output beyond max_response", func(t *testing.T) {
		cfg := testConfig()
		cfg.MaxResponseBytes = 8 << 20
		url := server(t, cfg)
		cases := make([]map[string]any, 16)
		for i := range cases {
			cases[i] = map[string]any{}
		}
		// 16 cases × 2 streams × 1 MiB.
		code, out, _ := post(t, url, map[string]any{"command": []string{"true"}, "cases": cases})
		wantProblem(t, code, out, 422, "body.cases")
		code, out, _ = post(t, url, map[string]any{"command": []string{"true"}, "limits": map[string]any{"output_bytes": 16 << 20}})
		wantProblem(t, code, out, 422, "body.limits.output_bytes")
		code, out, _ = post(t, url, map[string]any{"command": []string{"true"}, "cases": cases[:3]})
		if code != 200 || len(out["cases"].([]any)) != 3 {
			t.Fatalf("3 cases: %d %v", code, out)
		}
	})
	t.Run("the memory budget is counted before the run", func(t *testing.T) {
		cfg := testConfig()
		cfg.MaxResponseBytes, cfg.MemoryBudget = 4<<20, 16<<20
		url, s := serveWith(t, cfg, runner.New(testEnv.Jail, testReg, nil), testReg)
		// Each holds 2 streams × 2 MiB: three fit in 16 MiB (two run,
		// one waits for a box), a fourth does not.
		sleeper := map[string]any{"command": []string{"sleep", "41.3"}, "limits": map[string]any{"output_bytes": 2 << 20}}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, _ := json.Marshal(sleeper)
				req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/run", bytes.NewReader(b))
				req.Header.Set("Content-Type", "application/json")
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}()
		}
		waitUntil(t, func() bool { return s.budget.inUse() >= 12<<20 && len(sleepers("41.3")) == 2 })
		code, out, hdr := post(t, url, sleeper)
		if code != 429 || hdr.Get("Retry-After") == "" {
			t.Fatalf("a fourth request with the budget full: %d %v", code, out)
		}
		cancel()
		wg.Wait()
		waitUntil(t, func() bool { return len(sleepers("41.3")) == 0 && s.budget.inUse() == 0 })
		code, out, _ = post(t, url, map[string]any{"command": []string{"true"}, "limits": map[string]any{"output_bytes": 2 << 20}})
		if code != 200 {
			t.Fatalf("with the budget free again: %d %v", code, out)
		}
		waitUntil(t, func() bool { return s.budget.inUse() == 0 })
	})
}

// Output that is not UTF-8 goes to the client without being multiplied:
// the server allocates about what the jail's buffers take (2.3× the output
// measured; more under the race detector), not the 27× (40× under the race
// detector) it took when it built runes, base64 strings and the whole JSON
// in memory.
func TestAnswerIsStreamed(t *testing.T) {
	requireLanguage(t, "bash")
	cfg := testConfig()
	cfg.MaxResponseBytes = 64 << 20
	url := server(t, cfg)
	const perCase, cases = 4 << 20, 4
	body, _ := json.Marshal(map[string]any{
		"language": "bash",
		"files":    []map[string]string{{"name": "main.sh", "content": fmt.Sprintf("head -c %d /dev/zero | tr '\\000' '\\377'", perCase)}},
		"limits":   map[string]any{"output_bytes": 8 << 20},
		"cases":    make([]struct{}, cases),
	})
	// Each invalid byte is 3 bytes of U+FFFD plus 4/3 of base64.
	got := make([]byte, 0, 5*cases*perCase) // allocated before the measure
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	resp, err := http.Post(url+"/v1/run", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for err == nil && len(got) < cap(got) {
		var n int
		n, err = resp.Body.Read(got[len(got):cap(got)])
		got = got[:len(got)+n]
	}
	resp.Body.Close()
	runtime.ReadMemStats(&after)
	if resp.StatusCode != 200 || err != io.EOF {
		t.Fatalf("status %d, read %v: %.300s", resp.StatusCode, err, got)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d MiB of invalid UTF-8 output, a %d MiB answer: %.1f MiB allocated (%.2f× the output), heap in use %+.1f MiB",
		cases*perCase>>20, len(got)>>20, float64(alloc)/(1<<20), float64(alloc)/float64(cases*perCase),
		(float64(after.HeapInuse)-float64(before.HeapInuse))/(1<<20))
	if alloc > 8*cases*perCase {
		t.Fatalf("%d bytes allocated for %d bytes of output", alloc, cases*perCase)
	}
	var out struct {
		Cases []struct {
			Stdout       string `json:"stdout"`
			StdoutBase64 string `json:"stdout_base64"`
			Verdict      string `json:"verdict"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(got, &out); err != nil || len(out.Cases) != cases {
		t.Fatalf("%v, %d cases", err, len(out.Cases))
	}
	want := bytes.Repeat([]byte{0xff}, perCase)
	for i, c := range out.Cases {
		raw, _ := base64.StdEncoding.DecodeString(c.StdoutBase64)
		if !bytes.Equal(raw, want) || c.Stdout != strings.Repeat("\ufffd", perCase) || c.Verdict != "ok" {
			t.Fatalf("case %d: %d bytes, verdict %s", i, len(raw), c.Verdict)
		}
	}
}

// Slow, half-sent and idle clients hold their connection for a bounded
// time, and a normal client is answered throughout.
func TestSlowClients(t *testing.T) {
	cfg := testConfig()
	cfg.ReadTimeout, cfg.WriteTimeout, cfg.MaxConnections = time.Second, time.Second, 6
	url, s := serveWith(t, cfg, runner.New(testEnv.Jail, testReg, nil), testReg)
	addr := strings.TrimPrefix(url, "http://")
	normal := func(t *testing.T) {
		t.Helper()
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Minute}
		resp, err := c.Post(url+"/v1/run", "application/json", strings.NewReader(`{"command":["/bin/echo","fine"]}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"stdout":"fine\n"`) {
			t.Fatalf("a normal client: %d %s", resp.StatusCode, b)
		}
	}
	// dial opens a raw connection and reports when the server closes it.
	dial := func(t *testing.T) (net.Conn, <-chan []byte) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		closed := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(c)
			closed <- b
		}()
		return c, closed
	}
	dribble := func(c net.Conn, s string) {
		for i := range len(s) {
			if _, err := c.Write([]byte{s[i]}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	const headers = "POST /v1/run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n"

	t.Run("headers dribbled", func(t *testing.T) {
		c, closed := dial(t)
		go dribble(c, headers)
		normal(t)
		select {
		case <-closed:
		case <-time.After(30 * time.Second):
			t.Fatal("a client dribbling its headers still holds its connection")
		}
	})
	t.Run("body dribbled", func(t *testing.T) {
		c, closed := dial(t)
		c.Write([]byte(headers))
		go dribble(c, `{"stdin":"`+strings.Repeat("x", 1980)+`"}`)
		normal(t)
		select {
		case b := <-closed:
			if !strings.HasPrefix(string(b), "HTTP/1.1 408") || !strings.Contains(string(b), "application/problem+json") {
				t.Fatalf("answer to a dribbled body: %.300s", b)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a client dribbling its body still holds its connection")
		}
	})
	t.Run("half-sent body", func(t *testing.T) {
		c, closed := dial(t)
		c.Write([]byte(headers + `{"command":`))
		c.(*net.TCPConn).CloseWrite()
		select {
		case b := <-closed:
			if !strings.HasPrefix(string(b), "HTTP/1.1 400") || !strings.Contains(string(b), `"location":"body"`) || !strings.Contains(string(b), `"request_id"`) {
				t.Fatalf("answer to a body shorter than its Content-Length: %.400s", b)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no answer to a body shorter than its Content-Length")
		}
		normal(t)
	})
	t.Run("idle connections beyond the limit", func(t *testing.T) {
		var closedCount atomic.Int64
		const idle = 12
		for range idle {
			// A keep-alive connection, idle after its request (the server
			// would keep it for IdleTimeout, 30s).
			c, closed := dial(t)
			c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
			go func() {
				<-closed
				closedCount.Add(1)
			}()
		}
		normal(t)
		// At most MaxConnections open: each connection beyond took the
		// place of the longest idle one.
		waitUntil(t, func() bool { return closedCount.Load() >= idle-int64(cfg.MaxConnections)+1 })
		normal(t)
	})
	t.Run("an answer nobody reads", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.(*net.TCPConn).SetReadBuffer(4096)
		// 8 MB of NULs: 48 MB of JSON, far beyond the sockets' buffers.
		body := `{"command":["/bin/sh","-c","head -c 8000000 /dev/zero"],"limits":{"output_bytes":8000000}}`
		fmt.Fprintf(c, "POST /v1/run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		// The client never reads: the write deadline frees the connection
		// and the answer's memory.
		waitUntil(t, func() bool { return s.budget.inUse() > 0 })
		waitUntil(t, func() bool { return s.budget.inUse() == 0 })
		normal(t)
	})
	assertNoBoxes(t)
}
