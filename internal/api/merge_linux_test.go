package api

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/runbox-dev/runbox/internal/session"
)

// interleavedShell writes a and c to stdout and b to stderr, in three
// writes: only one descriptor for both streams keeps that order.
const interleavedShell = "printf a; printf b >&2; printf c"

var interleavedArgv = []string{"/bin/sh", "-c", interleavedShell}

// mergeCases: merge_output given (true, false) or left out (nil).
var mergeCases = []struct {
	name           string
	merge          any
	stdout, stderr string
}{
	{"merged", true, "abc", ""},
	{"apart", false, "ac", "b"},
	{"absent", nil, "ac", "b"},
}

// wantStreams checks a result object's status and streams.
func wantStreams(t *testing.T, what string, res any, stdout, stderr string) {
	t.Helper()
	m, _ := res.(map[string]any)
	if m["status"] != "ok" || m["stdout"] != stdout || m["stderr"] != stderr {
		t.Fatalf("%s: %v; want status ok, stdout %q, stderr %q", what, res, stdout, stderr)
	}
}

func withMerge(body map[string]any, merge any) map[string]any {
	if merge != nil {
		body["merge_output"] = merge
	}
	return body
}

func TestMergeOutputRunOverHTTP(t *testing.T) {
	url := server(t, testConfig())
	for _, tc := range mergeCases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, _ := post(t, url, withMerge(map[string]any{"command": interleavedArgv}, tc.merge))
			if code != http.StatusOK {
				t.Fatalf("%d %v", code, out)
			}
			wantStreams(t, "run", out["run"], tc.stdout, tc.stderr)
			code, out, _ = post(t, url, withMerge(map[string]any{"command": interleavedArgv,
				"cases": []map[string]any{{"expected_output": tc.stdout}, {}}}, tc.merge))
			if code != http.StatusOK {
				t.Fatalf("cases: %d %v", code, out)
			}
			for _, i := range []string{"0", "1"} {
				wantStreams(t, "case "+i, field(out, "cases", i), tc.stdout, tc.stderr)
			}
			if field(out, "cases", "0", "verdict") != "accepted" {
				t.Fatalf("verdict %v", field(out, "cases", "0", "verdict"))
			}
		})
	}
	t.Run("not a boolean", func(t *testing.T) {
		if code, out, _ := post(t, url, map[string]any{"command": interleavedArgv, "merge_output": "yes"}); code != http.StatusUnprocessableEntity {
			t.Fatalf("%d %v", code, out)
		}
	})
}

// A compile step's streams stay apart; the program's merge.
func TestMergeOutputLeavesTheCompile(t *testing.T) {
	requireLanguage(t, "c")
	url := server(t, testConfig())
	src := "#warning careful\n#include <unistd.h>\nint main(){write(1,\"a\",1);write(2,\"b\",1);write(1,\"c\",1);return 0;}"
	code, out, _ := post(t, url, map[string]any{"language": "c", "merge_output": true,
		"files": []map[string]string{{"name": "main.c", "content": src}}})
	if code != http.StatusOK {
		t.Fatalf("%d %v", code, out)
	}
	if stderr, _ := field(out, "compile", "stderr").(string); field(out, "compile", "stdout") != "" || len(stderr) == 0 {
		t.Fatalf("compile: %v; want its warning in stderr alone", out["compile"])
	}
	wantStreams(t, "run", out["run"], "abc", "")
}

func TestMergeOutputSessionOverHTTP(t *testing.T) {
	url, _ := sessionServer(t, testConfig(), session.Config{})
	id, _ := newSession(t, url, nil)
	for _, tc := range mergeCases {
		t.Run(tc.name, func(t *testing.T) {
			wantStreams(t, "command", command(t, url, id, withMerge(map[string]any{"shell": interleavedShell}, tc.merge)), tc.stdout, tc.stderr)
			// A background command's description and result.
			cid := background(t, url, id, withMerge(map[string]any{"shell": interleavedShell}, tc.merge))
			wantStreams(t, "background", finished(t, url, id, cid)["result"], tc.stdout, tc.stderr)
			// A run in the session: its cases merge too.
			r := call(t, "POST", url+"/v1/sessions/"+id+"/run", withMerge(map[string]any{"command": interleavedArgv,
				"cases": []map[string]any{{}}}, tc.merge))
			expect(t, r, http.StatusOK)
			wantStreams(t, "session run case", field(r.body, "cases", "0"), tc.stdout, tc.stderr)
		})
	}
}

func TestMergeOutputRunStream(t *testing.T) {
	url, _ := sessionServer(t, testConfig(), session.Config{})
	for _, tc := range mergeCases {
		t.Run(tc.name, func(t *testing.T) {
			w := runStream(t, url, withMerge(map[string]any{"command": interleavedArgv}, tc.merge))
			s := &screen{}
			w.until(t, s, ended)
			if s.out.String() != tc.stdout || s.err.String() != tc.stderr {
				t.Fatalf("streamed stdout %q, stderr %q; want %q, %q", s.out.String(), s.err.String(), tc.stdout, tc.stderr)
			}
			var resp map[string]any
			if err := json.Unmarshal(s.exit.Response, &resp); err != nil {
				t.Fatalf("response: %v: %s", err, s.exit.Response)
			}
			wantStreams(t, "response", resp["run"], tc.stdout, tc.stderr)
		})
	}
}
