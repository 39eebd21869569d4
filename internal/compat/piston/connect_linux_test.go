package piston

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// pistonSocket is a Piston client's connect socket.
type pistonSocket struct {
	t *testing.T
	c *websocket.Conn
}

func connect(t *testing.T, base string) *pistonSocket {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/piston/api/v2/connect", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return &pistonSocket{t, c}
}

func (p *pistonSocket) send(v any) {
	p.t.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.c.Write(ctx, websocket.MessageText, b); err != nil {
		p.t.Fatal(err)
	}
}

// next is the next message, or nil and the close code.
func (p *pistonSocket) next() (map[string]any, websocket.StatusCode) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, b, err := p.c.Read(ctx)
	if err != nil {
		code := websocket.CloseStatus(err)
		if code == -1 {
			p.t.Fatalf("read: %v", err)
		}
		return nil, code
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		p.t.Fatal(err)
	}
	return m, 0
}

// rest reads to the close: the messages, data of a stream joined into one
// message per run of them, and the close code.
func (p *pistonSocket) rest() ([]map[string]any, websocket.StatusCode) {
	p.t.Helper()
	var out []map[string]any
	for {
		m, code := p.next()
		if m == nil {
			return out, code
		}
		if n := len(out); n > 0 && m["type"] == "data" && out[n-1]["type"] == "data" && out[n-1]["stream"] == m["stream"] {
			out[n-1]["data"] = out[n-1]["data"].(string) + m["data"].(string)
			continue
		}
		out = append(out, m)
	}
}

func initMessage(lang, name, code string) map[string]any {
	file := map[string]any{"content": code}
	if name != "" {
		file["name"] = name
	}
	return map[string]any{"type": "init", "language": lang, "version": "*", "files": []any{file}}
}

func jsonMessages(t *testing.T, s string) []map[string]any {
	t.Helper()
	var v []map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad JSON in test: %v", err)
	}
	return v
}

// The protocol's happy paths: an interactive program, a compiled one, a
// compile error; every message and the close code.
func TestConnect(t *testing.T) {
	base := server(t)
	have := available(t, base)
	for _, tc := range []struct {
		name, lang, file, code string
		stdin                  []string
		want                   string // the messages after runtime
	}{
		{name: "interactive", lang: "python", code: "name = input()\nprint('hi ' + name, flush=True)\nprint(input()[::-1])",
			stdin: []string{"bob\n", "abc\n"},
			want: `[{"type":"stage","stage":"run"},{"type":"data","stream":"stdout","data":"hi bob\ncba\n"},
				{"type":"exit","stage":"run","code":0,"signal":null}]`},
		{name: "stderr and a failure", lang: "python", code: "import sys\nprint('oops', file=sys.stderr)\nsys.exit(2)",
			want: `[{"type":"stage","stage":"run"},{"type":"data","stream":"stderr","data":"oops\n"},
				{"type":"exit","stage":"run","code":2,"signal":null}]`},
		{name: "a signal", lang: "python", code: "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)",
			want: `[{"type":"stage","stage":"run"},{"type":"exit","stage":"run","code":null,"signal":"SIGSEGV"}]`},
		{name: "compiled", lang: "c", file: "main.c", code: "#include <stdio.h>\nint main(void){char s[64]; if(scanf(\"%63s\", s)==1) printf(\"<%s>\\n\", s);}",
			stdin: []string{"word\n"},
			want: `[{"type":"stage","stage":"compile"},{"type":"exit","stage":"compile","code":0,"signal":null},
				{"type":"stage","stage":"run"},{"type":"data","stream":"stdout","data":"<word>\n"},{"type":"exit","stage":"run","code":0,"signal":null}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !have[tc.lang] {
				t.Skipf("%s is not available on this host", tc.lang)
			}
			t.Parallel()
			p := connect(t, base)
			p.send(initMessage(tc.lang, tc.file, tc.code))
			m, code := p.next()
			if m["type"] != "runtime" || m["language"] != tc.lang || !semverRE.MatchString(m["version"].(string)) {
				t.Fatalf("first message %v (close %d)", m, code)
			}
			for _, in := range tc.stdin {
				p.send(map[string]any{"type": "data", "stream": "stdin", "data": in})
			}
			got, code := p.rest()
			if want := jsonMessages(t, tc.want); !reflect.DeepEqual(normalise(got), normalise(want)) || code != closeJobCompleted {
				t.Errorf("got %v, close %d\nwant %v, close 4999", got, code, want)
			}
		})
	}

	t.Run("compile error", func(t *testing.T) {
		if !have["c"] {
			t.Skip("c is not available on this host")
		}
		t.Parallel()
		p := connect(t, base)
		p.send(initMessage("c", "main.c", "int main(void){ return x; }"))
		p.next() // runtime
		got, code := p.rest()
		if len(got) != 3 || got[0]["stage"] != "compile" || got[1]["stream"] != "stderr" ||
			!reflect.DeepEqual(got[2], map[string]any{"type": "exit", "stage": "compile", "code": 1.0, "signal": nil}) || code != closeJobCompleted {
			t.Errorf("got %v, close %d", got, code)
		}
	})
}

// normalise makes decoded and literal JSON numbers compare alike.
func normalise(v []map[string]any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Each error close of the protocol.
func TestConnectCloseCodes(t *testing.T) {
	base := server(t)
	if !available(t, base)["python"] {
		t.Skip("python is not available on this host")
	}
	const waits = "import sys\nsys.stdin.read()" // runs until it is closed
	for _, tc := range []struct {
		name     string
		messages []any
		wait     bool // for the init timeout, sending nothing
		code     websocket.StatusCode
		error    string // the error message before the close, when there is one
	}{
		{name: "init timeout", wait: true, code: closeInitTimeout},
		{name: "data before init", messages: []any{map[string]any{"type": "data", "stream": "stdin", "data": "x"}}, code: closeNotInitialized},
		{name: "signal before init", messages: []any{map[string]any{"type": "signal", "signal": "SIGKILL"}}, code: closeNotInitialized},
		{name: "init twice", messages: []any{initMessage("python", "", waits), initMessage("python", "", waits)}, code: closeAlreadyInitialized},
		{name: "stdout written", messages: []any{initMessage("python", "", waits), map[string]any{"type": "data", "stream": "stdout", "data": "x"}},
			code: closeOnlyStdin},
		{name: "invalid signal", messages: []any{initMessage("python", "", waits), map[string]any{"type": "signal", "signal": "SIGFOO"}},
			code: closeInvalidSignal},
		{name: "unknown runtime", messages: []any{initMessage("intercal", "", "")}, code: closeError, error: "intercal-* runtime is unknown"},
		{name: "a limit above the server's", messages: []any{func() any {
			m := initMessage("python", "", "")
			m["run_timeout"] = 120000
			return m
		}()}, code: closeError, error: "run_timeout cannot exceed the configured limit of 60000"},
		{name: "not JSON", messages: []any{"{"}, code: closeError, error: "unexpected end of JSON input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Before the dial: the server's init timer starts before the
			// handshake ends on this side.
			start := time.Now()
			p := connect(t, base)
			for _, m := range tc.messages {
				if s, ok := m.(string); ok {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					_ = p.c.Write(ctx, websocket.MessageText, []byte(s))
					cancel()
					continue
				}
				p.send(m)
			}
			var errs []string
			var code websocket.StatusCode
			for {
				m, c := p.next()
				if m == nil {
					code = c
					break
				}
				if m["type"] == "error" {
					errs = append(errs, m["message"].(string))
				}
			}
			if code != tc.code {
				t.Errorf("close %d, want %d", code, tc.code)
			}
			if tc.error != "" && (len(errs) != 1 || !strings.Contains(errs[0], tc.error)) {
				t.Errorf("errors %q, want one with %q", errs, tc.error)
			}
			if tc.wait && time.Since(start) < initTimeout {
				t.Errorf("closed after %v, before the init timeout", time.Since(start))
			}
		})
	}
}

// A signal reaches the program running now: its handler runs.
func TestConnectSignalDelivered(t *testing.T) {
	base := server(t)
	if !available(t, base)["python"] {
		t.Skip("python is not available on this host")
	}
	p := connect(t, base)
	p.send(initMessage("python", "", "import signal, sys\n"+
		"signal.signal(signal.SIGINT, lambda *a: (sys.stdout.write('got SIGINT\\n'), sys.exit(3)))\n"+
		"print('ready', flush=True)\nwhile True: signal.pause()"))
	p.next() // runtime
	if m, _ := p.next(); m["type"] != "stage" {
		t.Fatalf("first message %v", m)
	}
	// Output comes in the chunks the program wrote ("ready", "\n").
	for out := ""; out != "ready\n"; {
		m, _ := p.next()
		if m == nil || m["type"] != "data" || !strings.HasPrefix("ready\n", out+m["data"].(string)) {
			t.Fatalf("not ready: %v after %q", m, out)
		}
		out += m["data"].(string)
	}
	p.send(map[string]any{"type": "signal", "signal": "SIGINT"})
	got, code := p.rest()
	want := `[{"type":"data","stream":"stdout","data":"got SIGINT\n"},{"type":"exit","stage":"run","code":3,"signal":null}]`
	if normalise(got) != normalise(jsonMessages(t, want)) || code != closeJobCompleted {
		t.Errorf("got %v, close %d", got, code)
	}
}
