package codebox

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/runbox-dev/runbox/internal/compat"
)

func TestPyFloat(t *testing.T) {
	for f, want := range map[float64]string{0.2: "0.2", 1: "1.0", 2.5: "2.5", 0.0001: "0.0001", 0.00001: "1e-05", 1e16: "1e+16", 1e15: "1000000000000000.0", 100: "100.0"} {
		if got := compat.PyFloat(f); got != want {
			t.Errorf("compat.PyFloat(%v) = %s, want %s", f, got, want)
		}
	}
}

func TestResponse(t *testing.T) {
	sig := func(s string) *string { return &s }
	for _, tc := range []struct {
		r    runResult
		want commandAnswer
	}{
		{runResult{Status: "ok", Stdout: "x", WallTimeMS: 1500}, commandAnswer{Stdout: "x", ElapsedTime: 1.5}},
		{runResult{Status: "runtime_error", ExitCode: 1, Stderr: "e"}, commandAnswer{Stderr: "e", ExitCode: 1}},
		{runResult{Status: "time_limit", ExitCode: -1, Signal: sig("SIGKILL"), Stdout: "part"}, commandAnswer{Stdout: "part", Stderr: "Timeout Error. Exceeded 0.2s", ExitCode: -1}},
		{runResult{Status: "time_limit", ExitCode: -1, Signal: sig("SIGKILL"), Stderr: "so far"}, commandAnswer{Stderr: "so far", ExitCode: -1}},
		{runResult{Status: "memory_limit", ExitCode: -1, Signal: sig("SIGKILL")}, commandAnswer{ExitCode: 137}},
		{runResult{Status: "signaled", ExitCode: -1, Signal: sig("SIGSEGV")}, commandAnswer{ExitCode: 139}},
		{runResult{Status: "output_limit", ExitCode: -1, Signal: sig("SIGKILL")}, commandAnswer{ExitCode: 137}},
		{runResult{Status: "runtime_error", ExitCode: 127, Message: "cannot execute x: no such file"}, commandAnswer{Stderr: "cannot execute x: no such file", ExitCode: 127}},
	} {
		if got := response(&tc.r, "0.2"); got != tc.want {
			t.Errorf("%+v:\n got %+v\nwant %+v", tc.r, got, tc.want)
		}
	}
}

func TestParseProject(t *testing.T) {
	p, err := parseProject("application/vnd.x+json; charset=utf-8", []byte(`{"sources": {"b": "1", "/a": "2", "a": "3", "x/./y": ""},
		"commands": [{"command": "ls"}, {"command": "ls", "timeout": null, "stdin": null}, {"command": "ls", "timeout": "1.5"}, {"command": "ls", "timeout": true}]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(p.sessionBody())
	if want := `{"files":[{"name":"b","content":"1"},{"name":"a","content":"3"},{"name":"x/y","content":""}]}`; string(body) != want {
		t.Errorf("session body %s, want %s", body, want)
	}
	if key, _ := p.sourceKey(1); key != "/a" {
		t.Errorf("sourceKey(1) = %q", key)
	}
	var timeouts []any
	for _, c := range p.commands {
		if c.timeout == nil {
			timeouts = append(timeouts, nil)
		} else {
			timeouts = append(timeouts, *c.timeout)
		}
	}
	if want := []any{0.2, nil, 1.5, 1.0}; !reflect.DeepEqual(timeouts, want) {
		t.Errorf("timeouts %v, want %v", timeouts, want)
	}
	runs, err := p.argvs(DefaultAliases)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(runs[0].body())
	if want := `{"command":["ls"],"limits":{"wall_time_ms":200}}`; string(b) != want {
		t.Errorf("command body %s, want %s", b, want)
	}
	b, _ = json.Marshal(runs[1].body())
	if want := `{"command":["ls"]}`; string(b) != want {
		t.Errorf("command body %s, want %s", b, want)
	}
	if got := runs[1].timeoutText(&info{Defaults: struct {
		WallTimeMS int64 `json:"wall_time_ms"`
	}{10000}}); got != "10.0" {
		t.Errorf("default timeout text %s", got)
	}
}

func TestBadSources(t *testing.T) {
	p := &project{sources: []source{{key: "ok/a.py"}, {key: "../x"}, {key: "a/.."}, {key: "a\x00"}, {key: "/abs.py"}}}
	want := []commandAnswer{
		{Stderr: "Invalid file path: /x", ExitCode: -1},
		{Stderr: "[Errno 21] Is a directory: '/box'", ExitCode: -1},
		{Stderr: "embedded null byte", ExitCode: -1},
	}
	if got := p.badSources(); !reflect.DeepEqual(got, want) {
		t.Errorf("badSources = %+v", got)
	}
}
