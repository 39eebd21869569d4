package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// runbox serve --compat serves each peer's API under its prefix, and at the
// root of a listener of its own when given one.
func TestServeCompat(t *testing.T) {
	needRoot(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	own := ln.Addr().String()
	ln.Close()
	srv, addr, exited := startServe(t, "--compat", "piston,codebox,judge0,opensandbox,sandkasten,sandrun,snekbox="+own)
	client := &http.Client{Timeout: time.Minute}
	call := func(method, url, body string) (int, string) {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	base := "http://" + addr
	for _, c := range []struct{ method, url, body, want string }{
		{"POST", base + "/piston/api/v2/execute", `{"language":"python","version":"*","files":[{"content":"print(6*7)"}]}`, `"stdout":"42\n"`},
		{"GET", base + "/piston/api/v2/runtimes", "", `"language":"python"`},
		{"POST", base + "/snekbox/eval", `{"input":"print(6*7)"}`, `"stdout":"42\n"`},
		{"POST", "http://" + own + "/eval", `{"input":"print(6*7)"}`, `"stdout":"42\n"`},
		{"POST", base + "/judge0/submissions?wait=true", `{"source_code":"print(6*7)","language_id":71}`, `"stdout":"42\n"`},
		{"POST", base + "/opensandbox/run", `{"command":["python3","-c","print(6*7)"]}`, `"stdout":"42\n"`},
		{"GET", base + "/opensandbox/health", "", `OK`},
		{"GET", base + "/sandrun/health", "", `healthy`},
		{"POST", base + "/sandkasten/run", `{"build":{"environment":"python","main_file":{"content":"print(6*7)"}}}`, `"stdout":"42\n"`},
		{"POST", base + "/codebox/execute", `{"sources":{"a.py":"print(6*7)"},"commands":[{"command":"python3 a.py","timeout":10}]}`, `"stdout":"42\n"`},
	} {
		code, body := call(c.method, c.url, c.body)
		if code/100 != 2 || !strings.Contains(body, c.want) {
			t.Errorf("%s %s: %d %s (want %s)", c.method, c.url, code, body, c.want)
		}
	}
	// An API that is not switched on is not served.
	if code, _ := call("GET", base+"/e2b/health", ""); code != http.StatusNotFound {
		t.Errorf("an API not switched on answers %d", code)
	}
	client.CloseIdleConnections()
	stopServe(t, srv, exited)
	// Naming an API runbox does not serve is a usage error, in one line.
	r := runbox(t, "", "serve", "--listen", "127.0.0.1:0", "--compat", "piston,nope")
	if r.code != exitUsage || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, `unknown API "nope"`) {
		t.Fatalf("--compat nope: exit %d, %q", r.code, r.stderr)
	}
}
