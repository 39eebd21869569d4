package api

// What a session saves and what live I/O costs, over a real listener and
// the real jail: a command in a live session against a one-shot run of the
// same program, a session's creation and deletion, and the time from a
// command's start, and from its write, to the client's receipt.
//
//	go test -run XXX -bench 'Session|RunTrue|WS' -benchtime 200x ./internal/api/

import (
	"context"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/runbox-dev/runbox/internal/session"
)

// latencies collects one duration per iteration and reports their median.
type latencies []time.Duration

func (l latencies) report(b *testing.B, unit string) {
	b.Helper()
	if len(l) == 0 {
		return
	}
	s := append(latencies(nil), l...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	b.ReportMetric(float64(s[len(s)/2].Microseconds())/1000, unit)
}

func BenchmarkSessionCommandHTTP(b *testing.B) {
	url, _ := sessionServer(b, testConfig(), session.Config{})
	id, _ := newSession(b, url, nil)
	body := map[string]any{"command": []string{"/bin/true"}}
	var lat latencies
	for b.Loop() {
		start := time.Now()
		res := command(b, url, id, body)
		lat = append(lat, time.Since(start))
		if res["status"] != "ok" {
			b.Fatalf("result %v", res)
		}
	}
	lat.report(b, "p50-ms")
}

func BenchmarkRunTrueHTTP(b *testing.B) {
	url, _ := sessionServer(b, testConfig(), session.Config{})
	body := map[string]any{"command": []string{"/bin/true"}}
	var lat latencies
	for b.Loop() {
		start := time.Now()
		r := call(b, "POST", url+"/v1/run", body)
		lat = append(lat, time.Since(start))
		if r.code != http.StatusOK || field(r.body, "run", "status") != "ok" {
			b.Fatalf("%d %s", r.code, r.raw)
		}
	}
	lat.report(b, "p50-ms")
}

func BenchmarkSessionCreateDelete(b *testing.B) {
	url, _ := sessionServer(b, testConfig(), session.Config{})
	var lat latencies
	for b.Loop() {
		start := time.Now()
		r := call(b, "POST", url+"/v1/sessions", map[string]any{})
		if r.code != http.StatusCreated {
			b.Fatalf("create: %d %s", r.code, r.raw)
		}
		if r := call(b, "DELETE", url+"/v1/sessions/"+r.body["id"].(string), nil); r.code != http.StatusNoContent {
			b.Fatalf("delete: %d %s", r.code, r.raw)
		}
		lat = append(lat, time.Since(start))
	}
	lat.report(b, "p50-ms")
}

// printsClock prints the wall clock in nanoseconds: the box's clock is the
// host's, so the client can tell when the program wrote.
var printsClock = []string{"/bin/date", "+%s%N"}

// receipt reads one output message and returns the time the program
// wrote it (the clock it printed) and the time it arrived.
func receipt(b *testing.B, w *ws) (wrote, got time.Time) {
	b.Helper()
	for {
		m := w.next(b)
		switch m.Type {
		case "stdout":
			got = time.Now()
			ns, err := strconv.ParseInt(strings.TrimSpace(string(data(b, m))), 10, 64)
			if err != nil {
				b.Fatalf("stdout %q", data(b, m))
			}
			return time.Unix(0, ns), got
		case "error", "exit", "done":
			b.Fatalf("before any output: %+v", m)
		}
	}
}

// BenchmarkWSFirstByte: from the start message of a command to its first
// output at the client (p50-ms), and from the program's write to the
// client's receipt (p50-write-ms), over an attach socket.
func BenchmarkWSFirstByte(b *testing.B) {
	url, _ := sessionServer(b, testConfig(), session.Config{KeptCommands: 4})
	id, _ := newSession(b, url, nil)
	var first, write latencies
	for b.Loop() {
		w := dial(b, url, "/v1/sessions/"+id+"/attach")
		start := time.Now()
		w.send(b, map[string]any{"type": "start", "command": printsClock})
		wrote, got := receipt(b, w)
		first, write = append(first, got.Sub(start)), append(write, got.Sub(wrote))
		// Its stdin is open until the client closes it (see attach).
		w.send(b, map[string]any{"type": "close_stdin"})
		for m := w.next(b); m.Type != "exit"; m = w.next(b) {
		}
		w.c.Close(websocket.StatusNormalClosure, "")
	}
	first.report(b, "p50-ms")
	write.report(b, "p50-write-ms")
}

// BenchmarkWSRunStreamFirstByte is the same over a run stream: a one-shot
// box per iteration.
func BenchmarkWSRunStreamFirstByte(b *testing.B) {
	url, _ := sessionServer(b, testConfig(), session.Config{})
	var first, write latencies
	for b.Loop() {
		w := dial(b, url, "/v1/run/stream")
		start := time.Now()
		w.send(b, map[string]any{"command": printsClock})
		wrote, got := receipt(b, w)
		first, write = append(first, got.Sub(start)), append(write, got.Sub(wrote))
		for m := w.next(b); m.Type != "done"; m = w.next(b) {
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _, _ = w.c.Read(ctx) // the server's close
		cancel()
	}
	first.report(b, "p50-ms")
	write.report(b, "p50-write-ms")
}
