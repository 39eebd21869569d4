package api

// The WebSocket endpoints over a real listener and the real jail: attach
// (a session's command, live, with stdin, a terminal, signals, re-attach)
// and the run stream (a /v1/run with live output and input).

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/runbox-dev/runbox/internal/session"
)

// ws is a client socket.
type ws struct {
	c *websocket.Conn
}

// dial opens a socket on path, closed when the test ends.
func dial(tb testing.TB, url, path string) *ws {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+path, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		tb.Fatalf("dial %s: %v (status %d)", path, err, status)
	}
	// Output messages carry up to 64 KiB of data, JSON-escaped; done
	// carries the whole /v1/run response.
	c.SetReadLimit(64 << 20)
	tb.Cleanup(func() { c.CloseNow() })
	return &ws{c: c}
}

func (w *ws) send(tb testing.TB, v any) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := wsjson.Write(ctx, w.c, v); err != nil {
		tb.Fatalf("send %v: %v", v, err)
	}
}

// next reads the next message; a socket that says nothing for 30 s fails
// the test.
func (w *ws) next(tb testing.TB) WSOut {
	tb.Helper()
	m, err := w.read(30 * time.Second)
	if err != nil {
		tb.Fatalf("read: %v", err)
	}
	return m
}

func (w *ws) read(timeout time.Duration) (WSOut, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var m WSOut
	typ, b, err := w.c.Read(ctx)
	if err != nil {
		return m, err
	}
	if typ != websocket.MessageText {
		return m, errors.New("a binary message")
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%w: %s", err, b)
	}
	return m, nil
}

// closed checks that the server closes the socket with code.
func (w *ws) closed(tb testing.TB, code websocket.StatusCode) {
	tb.Helper()
	m, err := w.read(10 * time.Second)
	if err == nil {
		tb.Fatalf("a message after the last: %+v", m)
	}
	if got := websocket.CloseStatus(err); got != code {
		tb.Fatalf("closed with %v (%v), want %v", got, err, code)
	}
}

// data is an output message's bytes.
func data(tb testing.TB, m WSOut) []byte {
	tb.Helper()
	if m.Data != nil {
		if m.DataBase64 != "" {
			tb.Fatalf("data and data_base64 in one message: %+v", m)
		}
		return []byte(*m.Data)
	}
	b, err := base64.StdEncoding.DecodeString(m.DataBase64)
	if err != nil {
		tb.Fatalf("data_base64: %v", err)
	}
	return b
}

// screen is what a socket has shown so far, by stream.
type screen struct {
	out, err bytes.Buffer
	base64   bool // some output came as data_base64
	exit     *WSOut
	msgs     []WSOut
}

// until reads messages into the screen until cond holds; an error
// message, or the end of the command before cond, fails the test.
func (w *ws) until(tb testing.TB, s *screen, cond func(*screen) bool) {
	tb.Helper()
	for !cond(s) {
		if s.exit != nil {
			tb.Fatalf("the command ended first: stdout %q stderr %q, result %+v", s.out.String(), s.err.String(), s.exit.Result)
		}
		m := w.next(tb)
		s.msgs = append(s.msgs, m)
		switch m.Type {
		case "stdout":
			s.out.Write(data(tb, m))
			s.base64 = s.base64 || m.DataBase64 != ""
		case "stderr":
			s.err.Write(data(tb, m))
		case "exit", "done":
			s.exit = &m
		case "error":
			tb.Fatalf("error message: %+v", m.Error)
		}
	}
}

func shows(stream string, want string) func(*screen) bool {
	return func(s *screen) bool {
		if stream == "stderr" {
			return strings.Contains(s.err.String(), want)
		}
		return strings.Contains(s.out.String(), want)
	}
}

func ended(s *screen) bool { return s.exit != nil }

// attach opens an attach socket and sends its first message; it returns
// the command's id from the started message.
//
// When the test ends, the command's stdin is closed through the manager
// before its session is deleted: a jail that waits for the end of a
// command's stdin before it reports the command's end (see
// TestAttachCommandEndsWithOpenStdin) then fails the test instead of
// hanging the package, its session's end, and the jail's close.
func attach(tb testing.TB, m *session.Manager, url, id string, first map[string]any) (*ws, string) {
	tb.Helper()
	w := dial(tb, url, "/v1/sessions/"+id+"/attach")
	w.send(tb, first)
	msg := w.next(tb)
	if msg.Type != "started" || !hexID.MatchString(msg.CommandID) {
		tb.Fatalf("first answer %+v (error %+v)", msg, msg.Error)
	}
	if ss, err := m.Get(id); err == nil {
		if c, err := ss.Command(msg.CommandID); err == nil {
			tb.Cleanup(func() { _ = c.CloseStdin() })
		}
	}
	return w, msg.CommandID
}

func TestAttachStdin(t *testing.T) {
	url, m := sessionServer(t, testConfig(), session.Config{})
	id, _ := newSession(t, url, nil)
	w, cid := attach(t, m, url, id, map[string]any{"type": "start", "command": []string{"cat"}})
	s := &screen{}
	w.send(t, map[string]any{"type": "stdin", "data": "hello\n"})
	w.until(t, s, shows("stdout", "hello\n"))
	// Bytes that are not UTF-8 travel as base64 both ways.
	w.send(t, map[string]any{"type": "stdin", "data_base64": base64.StdEncoding.EncodeToString([]byte("wor\xffld\n"))})
	w.until(t, s, shows("stdout", "ld\n"))
	if want := "hello\nwor\xffld\n"; s.out.String() != want || !s.base64 {
		t.Fatalf("stdout %q (base64 %v), want %q in base64", s.out.String(), s.base64, want)
	}
	// A bad message is answered, and the socket goes on.
	w.send(t, map[string]any{"type": "stdin", "data_base64": "%%%"})
	if m := w.next(t); m.Type != "error" || m.Error.Status != 422 || m.Error.Errors[0].Location != "message.data" {
		t.Fatalf("bad base64: %+v", m)
	}
	w.send(t, map[string]any{"type": "resize", "rows": 10, "cols": 10})
	if m := w.next(t); m.Type != "error" || m.Error.Status != 409 {
		t.Fatalf("resize without a terminal: %+v", m)
	}
	w.send(t, map[string]any{"type": "close_stdin"})
	w.until(t, s, ended)
	if r := s.exit.Result; s.exit.Type != "exit" || s.exit.CommandID != cid || r.Status != "ok" ||
		r.StdoutBase64 != base64.StdEncoding.EncodeToString([]byte("hello\nwor\xffld\n")) {
		t.Fatalf("exit %+v", s.exit)
	}
	w.closed(t, websocket.StatusNormalClosure)
	// The command is the session's: HTTP sees it too.
	r := call(t, "GET", url+"/v1/sessions/"+id+"/commands/"+cid, nil)
	if r.body["status"] != "done" || r.body["background"] != true || r.body["pty"] != false {
		t.Fatalf("command: %s", r.raw)
	}
}

func TestAttachStreamsAndExit(t *testing.T) {
	url, m := sessionServer(t, testConfig(), session.Config{})
	id, _ := newSession(t, url, nil)
	w, _ := attach(t, m, url, id, map[string]any{"type": "start", "shell": `echo out; echo err >&2; printf '\377\376'; exit 3`,
		"env": map[string]string{"X": "1"}})
	s := &screen{}
	w.until(t, s, ended)
	if s.out.String() != "out\n\xff\xfe" || s.err.String() != "err\n" || !s.base64 {
		t.Fatalf("stdout %q stderr %q base64 %v", s.out.String(), s.err.String(), s.base64)
	}
	for _, m := range s.msgs {
		if m.Type == "stderr" && string(data(t, m)) != "err\n" {
			t.Fatalf("stderr message %+v", m)
		}
	}
	if r := s.exit.Result; r.Status != "runtime_error" || r.ExitCode != 3 {
		t.Fatalf("result %+v", r)
	}
	w.closed(t, websocket.StatusNormalClosure)
}

func TestAttachPTY(t *testing.T) {
	url, m := sessionServer(t, testConfig(), session.Config{})
	id, _ := newSession(t, url, nil)
	t.Run("size and resize", func(t *testing.T) {
		w, cid := attach(t, m, url, id, map[string]any{"type": "start", "shell": "stty size; read x; stty size",
			"pty": map[string]any{"rows": 30, "cols": 100}})
		s := &screen{}
		w.until(t, s, shows("stdout", "30 100"))
		w.send(t, map[string]any{"type": "resize", "rows": 40, "cols": 120})
		w.send(t, map[string]any{"type": "stdin", "data": "\n"})
		w.until(t, s, shows("stdout", "40 120"))
		w.until(t, s, ended)
		if s.exit.Result.Status != "ok" || s.err.Len() != 0 {
			t.Fatalf("result %+v, stderr %q", s.exit.Result, s.err.String())
		}
		if r := call(t, "GET", url+"/v1/sessions/"+id+"/commands/"+cid, nil); r.body["pty"] != true {
			t.Fatalf("command: %s", r.raw)
		}
	})
	t.Run("Ctrl-C interrupts the foreground program", func(t *testing.T) {
		w, _ := attach(t, m, url, id, map[string]any{"type": "start", "command": []string{"/bin/sh", "-i"},
			"pty": map[string]any{"rows": 24, "cols": 80}})
		s := &screen{}
		w.send(t, map[string]any{"type": "stdin", "data": "sleep 100.4\n"})
		waitUntil(t, func() bool { return len(sleepers("100.4")) == 1 })
		w.send(t, map[string]any{"type": "stdin", "data": "\u0003"})
		waitUntil(t, func() bool { return len(sleepers("100.4")) == 0 })
		// The shell lives on: it computes what the echoed line does not
		// show.
		w.send(t, map[string]any{"type": "stdin", "data": "echo after-$((20+22))\n"})
		w.until(t, s, shows("stdout", "after-42"))
		w.send(t, map[string]any{"type": "stdin", "data": "exit 5\n"})
		w.until(t, s, ended)
		if r := s.exit.Result; r.Status != "runtime_error" || r.ExitCode != 5 {
			t.Fatalf("result %+v; screen %q", r, s.out.String())
		}
	})
	t.Run("a signal message", func(t *testing.T) {
		w, _ := attach(t, m, url, id, map[string]any{"type": "start", "shell": "echo ready; exec sleep 100.5",
			"pty": map[string]any{"rows": 24, "cols": 80}})
		s := &screen{}
		w.until(t, s, shows("stdout", "ready"))
		w.send(t, map[string]any{"type": "signal", "signal": "SIGBOGUS"})
		if m := w.next(t); m.Type != "error" || m.Error.Errors[0].Location != "message.signal" {
			t.Fatalf("bad signal: %+v", m)
		}
		w.send(t, map[string]any{"type": "signal", "signal": "SIGINT"})
		w.until(t, s, ended)
		if r := s.exit.Result; r.Status != "signaled" || r.Signal == nil || *r.Signal != "SIGINT" {
			t.Fatalf("result %+v", r)
		}
	})
}

// A command started over a socket has an open stdin until the client
// closes it; the command may end first, by itself or with its session.
func TestAttachCommandEndsWithOpenStdin(t *testing.T) {
	url, m := sessionServer(t, testConfig(), session.Config{})
	t.Run("by itself", func(t *testing.T) {
		id, _ := newSession(t, url, nil)
		w, _ := attach(t, m, url, id, map[string]any{"type": "start", "shell": "echo bye"})
		s := &screen{}
		w.until(t, s, shows("stdout", "bye\n"))
		msg, err := w.read(10 * time.Second)
		if err != nil || msg.Type != "exit" || msg.Result.Status != "ok" {
			t.Fatalf("a command that ended without reading its open stdin: no exit (%+v, %v)", msg, err)
		}
		w.closed(t, websocket.StatusNormalClosure)
	})
	t.Run("with its session", func(t *testing.T) {
		id, _ := newSession(t, url, nil)
		w, _ := attach(t, m, url, id, map[string]any{"type": "start", "command": []string{"cat"}})
		s := &screen{}
		w.send(t, map[string]any{"type": "stdin", "data": "running\n"})
		w.until(t, s, shows("stdout", "running\n"))
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		r, err := send(ctx, "DELETE", url+"/v1/sessions/"+id, nil)
		if err != nil || r.code != http.StatusNoContent {
			t.Fatalf("delete a session whose command's stdin is open: %v %d %s", err, r.code, r.raw)
		}
		w.until(t, s, ended)
		w.closed(t, websocket.StatusNormalClosure)
	})
}

// A command started over a socket outlives it; attaching again replays its
// output from the start, then follows it.
func TestAttachAgain(t *testing.T) {
	url, m := sessionServer(t, testConfig(), session.Config{})
	id, _ := newSession(t, url, nil)
	first, cid := attach(t, m, url, id, map[string]any{"type": "start", "shell": `echo one; read x; echo "two-$x"`})
	s := &screen{}
	first.until(t, s, shows("stdout", "one\n"))
	if err := first.c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatalf("close: %v", err)
	}
	for range 3 {
		if r := call(t, "GET", url+"/v1/sessions/"+id+"/commands/"+cid, nil); r.body["status"] != "running" || r.body["stdout"] != "one\n" {
			t.Fatalf("after the socket closed: %s", r.raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
	again, got := attach(t, m, url, id, map[string]any{"type": "attach", "command_id": cid})
	if got != cid {
		t.Fatalf("attached to %s, want %s", got, cid)
	}
	s = &screen{}
	again.until(t, s, shows("stdout", "one\n"))
	again.send(t, map[string]any{"type": "stdin", "data": "x\n"})
	again.until(t, s, ended)
	if s.out.String() != "one\ntwo-x\n" || s.exit.Result.Status != "ok" {
		t.Fatalf("stdout %q, result %+v", s.out.String(), s.exit.Result)
	}
	again.closed(t, websocket.StatusNormalClosure)

	// A finished command: all of it at once, then its result.
	late, _ := attach(t, m, url, id, map[string]any{"type": "attach", "command_id": cid})
	s = &screen{}
	late.until(t, s, ended)
	if s.out.String() != "one\ntwo-x\n" {
		t.Fatalf("replay %q", s.out.String())
	}
	// A background command started over HTTP; it has no stdin to give.
	bg := background(t, url, id, map[string]any{"shell": "echo hi; sleep 0.5; echo bye"})
	w, _ := attach(t, m, url, id, map[string]any{"type": "attach", "command_id": bg})
	s = &screen{}
	w.until(t, s, shows("stdout", "hi\n"))
	w.send(t, map[string]any{"type": "stdin", "data": "x"})
	if m := w.next(t); m.Type != "error" || m.Error.Status != 409 {
		t.Fatalf("stdin of a command without one: %+v", m)
	}
	w.until(t, s, ended)
	if s.out.String() != "hi\nbye\n" || s.exit.CommandID != bg {
		t.Fatalf("stdout %q exit %+v", s.out.String(), s.exit)
	}
}

func TestAttachBadFirstMessage(t *testing.T) {
	url, _ := sessionServer(t, testConfig(), session.Config{})
	id, _ := newSession(t, url, nil)
	cases := []struct {
		name     string
		msg      any // string: sent as is
		status   int
		location string
	}{
		{"unknown type", map[string]any{"type": "bogus"}, 422, "message.type"},
		{"not JSON", "hello", 422, "message"},
		{"unknown field", map[string]any{"type": "start", "command": []string{"true"}, "nope": 1}, 422, "message"},
		{"no command", map[string]any{"type": "start"}, 422, "message.command"},
		{"command and shell", map[string]any{"type": "start", "command": []string{"true"}, "shell": "true"}, 422, "message.shell"},
		{"terminal too small", map[string]any{"type": "start", "command": []string{"true"}, "pty": map[string]any{"rows": 0, "cols": 80}}, 422, "message.pty"},
		{"limit above the maximum", map[string]any{"type": "start", "command": []string{"true"}, "limits": map[string]any{"wall_time_ms": time.Hour.Milliseconds()}}, 422, "message.limits.wall_time_ms"},
		{"bad env", map[string]any{"type": "start", "command": []string{"true"}, "env": map[string]string{"A=B": "c"}}, 422, "message.env.A=B"},
		{"no such command", map[string]any{"type": "attach", "command_id": strings.Repeat("0", 32)}, 404, "path.cid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := dial(t, url, "/v1/sessions/"+id+"/attach")
			if s, ok := tc.msg.(string); ok {
				if err := w.c.Write(context.Background(), websocket.MessageText, []byte(s)); err != nil {
					t.Fatal(err)
				}
			} else {
				w.send(t, tc.msg)
			}
			m := w.next(t)
			if m.Type != "error" || m.Error == nil || m.Error.Status != tc.status || len(m.Error.Errors) == 0 || m.Error.Errors[0].Location != tc.location {
				t.Fatalf("answer %+v (problem %+v), want an error %d at %s", m, m.Error, tc.status, tc.location)
			}
			if m.Error.RequestID == "" {
				t.Fatalf("no request id: %+v", m.Error)
			}
			w.closed(t, websocket.StatusPolicyViolation)
		})
	}
	t.Run("no such session", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/v1/sessions/"+strings.Repeat("0", 32)+"/attach", nil)
		if err == nil {
			c.CloseNow()
			t.Fatal("attached to no session")
		}
		if resp == nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("dial: %v %v", err, resp)
		}
	})
	alive(t, url, id)
}

// byteAtATime writes 1 MB, one write(2) each, within an output limit of
// neverReadLimit.
var byteAtATime = []string{"dd", "if=/dev/zero", "bs=1", "count=1000000", "status=none"}

const neverReadLimit = 1 << 20

// A client that never reads while its command prints: the command runs on
// to its end or its output limit, and the server answers everyone else
// meanwhile. What it keeps of the output (for GET and attach) is the
// bytes: a command that writes a byte at a time must not make it keep a
// record per write, tens of bytes of bookkeeping for each byte.
func TestAttachClientNeverReads(t *testing.T) {
	url, m := sessionServer(t, testConfig(), session.Config{})
	id, _ := newSession(t, url, nil)
	ss, err := m.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		argv   []string
		status string
		stdout int
	}{
		{"yes", []string{"yes"}, "output_limit", neverReadLimit},
		{"a byte at a time", byteAtATime, "ok", 1000000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, cid := attach(t, m, url, id, map[string]any{"type": "start", "command": tc.argv, "limits": map[string]any{"output_bytes": neverReadLimit}})
			out := finished(t, url, id, cid)
			if field(out, "result", "status") != tc.status || len(field(out, "result", "stdout").(string)) != tc.stdout {
				t.Fatalf("result %v %v", field(out, "result", "status"), field(out, "result", "message"))
			}
			expect(t, call(t, "GET", url+"/healthz", nil), http.StatusOK)
			alive(t, url, id)
			c, err := ss.Command(cid)
			if err != nil {
				t.Fatal(err)
			}
			chunks, _, _ := c.Output(0)
			n := 0
			for _, ch := range chunks {
				n += len(ch.Data)
			}
			t.Logf("%d bytes kept in %d records", n, len(chunks))
			if n != tc.stdout || len(chunks) > tc.stdout/256 {
				t.Fatalf("the command's log keeps %d bytes in %d records, for %d bytes of output", n, len(chunks), tc.stdout)
			}
		})
	}
}

// run opens a run stream and sends its first message.
func runStream(tb testing.TB, url string, body any) *ws {
	tb.Helper()
	w := dial(tb, url, "/v1/run/stream")
	w.send(tb, body)
	return w
}

func TestRunStreamInteractive(t *testing.T) {
	requireLanguage(t, "python")
	url, _ := sessionServer(t, testConfig(), session.Config{})
	w := runStream(t, url, map[string]any{"language": "python", "files": []map[string]string{{"name": "main.py",
		"content": "print('hello', flush=True)\nname = input('name? ')\nprint('bye', name)\n"}}})
	s := &screen{}
	// The prompt arrives while the program waits for its input.
	w.until(t, s, shows("stdout", "name? "))
	if s.out.String() != "hello\nname? " {
		t.Fatalf("before any input: %q", s.out.String())
	}
	if s.msgs[0].Type != "stage" || s.msgs[0].Stage != "run" || s.msgs[0].Index != nil {
		t.Fatalf("first message %+v", s.msgs[0])
	}
	w.send(t, map[string]any{"type": "stdin", "data": "bob\n"})
	w.until(t, s, ended)
	if s.exit.Type != "done" || s.out.String() != "hello\nname? bye bob\n" {
		t.Fatalf("end %+v, stdout %q", s.exit, s.out.String())
	}
	var resp RunResponse
	if err := json.Unmarshal(s.exit.Response, &resp); err != nil {
		t.Fatalf("response: %v: %s", err, s.exit.Response)
	}
	if resp.Language != "python" || resp.Run == nil || resp.Run.Status != "ok" || resp.Run.Stdout != "hello\nname? bye bob\n" {
		t.Fatalf("response %s", s.exit.Response)
	}
	w.closed(t, websocket.StatusNormalClosure)
}

func TestRunStreamStages(t *testing.T) {
	url, _ := sessionServer(t, testConfig(), session.Config{})
	t.Run("compile then run", func(t *testing.T) {
		requireLanguage(t, "c")
		// A source of its own: compiled, not taken from a cache.
		src := fmt.Sprintf("#include <stdio.h>\nint main(){puts(\"c-%d\");}\n", time.Now().UnixNano())
		w := runStream(t, url, map[string]any{"language": "c", "files": []map[string]string{{"name": "main.c", "content": src}}})
		s := &screen{}
		w.until(t, s, ended)
		var kinds []string
		for _, m := range s.msgs {
			kinds = append(kinds, m.Type+":"+m.Stage)
		}
		if strings.Join(kinds, " ") != "stage:compile stage:run stdout: done:" {
			t.Fatalf("messages %v", kinds)
		}
		var resp RunResponse
		if err := json.Unmarshal(s.exit.Response, &resp); err != nil || resp.Compile == nil || resp.Compile.Status != "ok" ||
			resp.Run == nil || !strings.HasPrefix(resp.Run.Stdout, "c-") || resp.Run.Stdout != s.out.String() {
			t.Fatalf("response %s (%v)", s.exit.Response, err)
		}
	})
	t.Run("cases", func(t *testing.T) {
		w := runStream(t, url, map[string]any{"command": []string{"cat"},
			"cases": []map[string]any{{"stdin": "a", "expected_output": "a"}, {"stdin": "b", "expected_output": "c"}}})
		s := &screen{}
		w.until(t, s, ended)
		var got []string
		for _, m := range s.msgs {
			switch m.Type {
			case "stage":
				if m.Index == nil {
					t.Fatalf("a case stage without its index: %+v", m)
				}
				got = append(got, fmt.Sprintf("%s %d", m.Stage, *m.Index))
			case "stdout":
				got = append(got, "out "+string(data(t, m)))
			default:
				got = append(got, m.Type)
			}
		}
		if want := "case 0|out a|case 1|out b|done"; strings.Join(got, "|") != want {
			t.Fatalf("messages %q, want %q", strings.Join(got, "|"), want)
		}
		var resp RunResponse
		if err := json.Unmarshal(s.exit.Response, &resp); err != nil || len(resp.Cases) != 2 ||
			resp.Cases[0].Verdict != "accepted" || resp.Cases[1].Verdict != "wrong_answer" {
			t.Fatalf("response %s", s.exit.Response)
		}
	})
}

func TestRunStreamBadFirstMessage(t *testing.T) {
	url, _ := sessionServer(t, testConfig(), session.Config{})
	cases := []struct {
		name     string
		msg      any
		location string
	}{
		{"unknown field", map[string]any{"command": []string{"true"}, "bogus": 1}, "body.bogus"},
		{"bad encoding", map[string]any{"language": "python", "files": []map[string]string{{"name": "main.py", "content": "", "encoding": "rot13"}}}, "body.files[0].encoding"},
		{"limit above the maximum", map[string]any{"command": []string{"true"}, "limits": map[string]any{"wall_time_ms": time.Hour.Milliseconds()}}, "body.limits.wall_time_ms"},
		{"neither language nor command", map[string]any{"stdin": "x"}, "body.language"},
		{"not JSON", "{", "body"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := dial(t, url, "/v1/run/stream")
			if s, ok := tc.msg.(string); ok {
				if err := w.c.Write(context.Background(), websocket.MessageText, []byte(s)); err != nil {
					t.Fatal(err)
				}
			} else {
				w.send(t, tc.msg)
			}
			m := w.next(t)
			if m.Type != "error" || m.Error == nil || m.Error.Status != 422 || len(m.Error.Errors) == 0 || m.Error.Errors[0].Location != tc.location {
				t.Fatalf("answer %+v (problem %+v), want an error at %s", m, m.Error, tc.location)
			}
			w.closed(t, websocket.StatusPolicyViolation)
		})
	}
}

// A run stream's client that does not read while its program writes a
// byte at a time: the output waits for it, and arrives whole.
func TestRunStreamClientNeverReads(t *testing.T) {
	url, _ := sessionServer(t, testConfig(), session.Config{})
	w := runStream(t, url, map[string]any{"command": byteAtATime, "limits": map[string]any{"output_bytes": neverReadLimit}})
	waitUntil(t, func() bool { return hostProcess(byteAtATime...) })
	eventually(t, 60*time.Second, func() error {
		if hostProcess(byteAtATime...) {
			return errors.New("still writing")
		}
		return nil
	})
	expect(t, call(t, "GET", url+"/healthz", nil), http.StatusOK)
	s := &screen{}
	w.until(t, s, ended)
	var resp RunResponse
	if err := json.Unmarshal(s.exit.Response, &resp); err != nil || resp.Run == nil || resp.Run.Status != "ok" || s.out.Len() != 1000000 {
		t.Fatalf("stdout %d bytes, response %.300s", s.out.Len(), s.exit.Response)
	}
	t.Logf("1 MB in %d messages", len(s.msgs))
}

// A run stream's queue holds the output's bytes, however small the
// program's writes: a write joins the output of its stream queued before
// it, up to a message's bound.
func TestRunStreamQueueMergesOutput(t *testing.T) {
	o := &outbox{wake: make(chan struct{}, 1)}
	stdout, stderr := streamWriter{o, "stdout"}, streamWriter{o, "stderr"}
	for range 1 << 20 {
		stdout.Write([]byte{'x'})
	}
	o.push(WSOut{Type: "stage", Stage: "case"}, nil)
	stderr.Write([]byte("e"))
	stdout.Write([]byte("y"))
	stdout.Write(nil)
	var got []string
	for i, m := range o.msgs {
		got = append(got, fmt.Sprintf("%s:%d", m.Type, len(o.data[i])))
	}
	want := strings.Repeat(fmt.Sprintf("stdout:%d ", wsChunkBytes), (1<<20)/wsChunkBytes) + "stage:0 stderr:1 stdout:1"
	if strings.Join(got, " ") != want {
		t.Fatalf("queue %v\nwant %s", got, want)
	}
}

// The client going away ends the run and its box; messages it sends that
// break the rules are answered, and the run goes on.
func TestRunStreamClientMessages(t *testing.T) {
	url, _ := sessionServer(t, testConfig(), session.Config{})
	w := runStream(t, url, map[string]any{"command": []string{"/bin/sh", "-c", "echo started; exec sleep 100.9"}})
	s := &screen{}
	w.until(t, s, shows("stdout", "started"))
	for _, tc := range []struct {
		msg      map[string]any
		location string
	}{
		{map[string]any{"type": "stdin", "data_base64": "%%%"}, "message.data"},
		{map[string]any{"type": "resize", "rows": 1, "cols": 1}, "message.type"},
		{map[string]any{"type": "signal", "signal": "SIGNOPE"}, "message.signal"},
		{map[string]any{"type": "stdin", "nope": true}, "message"},
	} {
		w.send(t, tc.msg)
		if m := w.next(t); m.Type != "error" || m.Error.Errors[0].Location != tc.location {
			t.Fatalf("%v: %+v", tc.msg, m)
		}
	}
	waitUntil(t, func() bool { return len(sleepers("100.9")) == 1 })
	w.c.CloseNow()
	waitUntil(t, func() bool { return len(sleepers("100.9")) == 0 })
	expect(t, call(t, "GET", url+"/healthz", nil), http.StatusOK)
}

// A signal message reaches the program running now.
func TestRunStreamSignal(t *testing.T) {
	url, _ := sessionServer(t, testConfig(), session.Config{})
	w := runStream(t, url, map[string]any{"command": []string{"/bin/sh", "-c", "trap 'echo got TERM; exit 7' TERM; echo started; while :; do sleep 0.05; done"}})
	s := &screen{}
	w.until(t, s, shows("stdout", "started"))
	w.send(t, map[string]any{"type": "signal", "signal": "SIGTERM"})
	w.until(t, s, ended)
	var resp RunResponse
	if err := json.Unmarshal(s.exit.Response, &resp); err != nil || resp.Run == nil || resp.Run.ExitCode != 7 || resp.Run.Stdout != "started\ngot TERM\n" {
		t.Fatalf("response %s (%v)", s.exit.Response, err)
	}
}
