package judge0

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"reflect"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{in: "", want: nil},
		{in: "a b\tc", want: []string{"a", "b", "c"}},
		{in: `'a b' "c \"d\"" e\ f`, want: []string{"a b", `c "d"`, "e f"}},
		{in: `a'b'"c" ''`, want: []string{"abc", ""}},
		{in: `$HOME *`, want: []string{"$HOME", "*"}},
		{in: `'open`, err: true},
		{in: `"open`, err: true},
		{in: `end\`, err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := split(tc.in)
			if (err != nil) != tc.err || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("split(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}

func sig(s string) *string { return &s }

func TestStatusID(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    runResult
		want int
	}{
		{"accepted", runResult{Status: "ok", Verdict: "accepted"}, 3},
		{"no expected output", runResult{Status: "ok"}, 3},
		{"wrong answer", runResult{Status: "ok", Verdict: "wrong_answer"}, 4},
		{"time", runResult{Status: "time_limit"}, 5},
		{"segv", runResult{Status: "signaled", Signal: sig("SIGSEGV")}, 7},
		{"xfsz", runResult{Status: "signaled", Signal: sig("SIGXFSZ")}, 8},
		{"fpe", runResult{Status: "signaled", Signal: sig("SIGFPE")}, 9},
		{"abrt", runResult{Status: "signaled", Signal: sig("SIGABRT")}, 10},
		{"kill", runResult{Status: "signaled", Signal: sig("SIGKILL")}, 12},
		{"nzec", runResult{Status: "runtime_error", ExitCode: 1}, 11},
		{"memory", runResult{Status: "memory_limit"}, 12},
		{"output", runResult{Status: "output_limit"}, 12},
		{"internal", runResult{Status: "internal_error"}, 13},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := statusID(&tc.r); got != tc.want {
				t.Fatalf("statusID = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestFromJob(t *testing.T) {
	for _, tc := range []struct {
		name string
		j    jobView
		want int
	}{
		{"queued", jobView{Status: "queued"}, 1},
		{"running", jobView{Status: "running"}, 2},
		{"done", jobView{Status: "done", Result: &runResponse{Run: &runResult{Status: "ok"}}}, 3},
		{"compile", jobView{Status: "done", Result: &runResponse{Compile: &runResult{Status: "runtime_error", Stderr: "x"}}}, 6},
		{"failed", jobView{Status: "failed", Error: "boom"}, 13},
		{"cancelled", jobView{Status: "cancelled"}, 13},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fromJob(&tc.j).status.ID; got != tc.want {
				t.Fatalf("status = %d, want %d", got, tc.want)
			}
		})
	}
}

// entry is one member of a test archive.
type entry struct {
	name string
	body string
	mode fs.FileMode
}

func makeZip(t testing.TB, entries ...entry) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.mode != 0 {
			h.SetMode(e.mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

func TestUnzip(t *testing.T) {
	many := make([]entry, 10)
	for i := range many {
		many[i] = entry{name: strings.Repeat("f", i+1), body: "x"}
	}
	deep := strings.Repeat("d/", maxZipDepth+1) + "f"
	for _, tc := range []struct {
		name    string
		zip     string
		want    []string // names; nil when refused
		refused string   // a part of the reason
	}{
		{"files", makeZip(t, entry{name: "dir/", mode: fs.ModeDir | 0o755}, entry{name: "dir/./m.py", body: "x"}, entry{name: "n.txt", body: "y"}),
			[]string{"dir/m.py", "n.txt"}, ""},
		{"dot dot", makeZip(t, entry{name: "../x", body: "x"}), nil, "leaves the workspace"},
		{"inner dot dot", makeZip(t, entry{name: "a/../../x", body: "x"}), nil, "leaves the workspace"},
		{"absolute", makeZip(t, entry{name: "/abs", body: "x"}), nil, "absolute"},
		{"backslash", makeZip(t, entry{name: `..\x`, body: "x"}), nil, "absolute"},
		{"symlink", makeZip(t, entry{name: "l", body: "/etc/passwd", mode: fs.ModeSymlink | 0o777}), nil, "not a regular file"},
		{"too many", makeZip(t, many...), nil, "at most 5"},
		{"bomb", makeZip(t, entry{name: "z", body: strings.Repeat("\x00", 5000)}), nil, "more than 4096 bytes"},
		{"duplicate", makeZip(t, entry{name: "a", body: "1"}, entry{name: "./a", body: "2"}), nil, "twice"},
		{"main", makeZip(t, entry{name: "main.py", body: "1"}), nil, "twice"},
		{"deep", makeZip(t, entry{name: deep, body: "1"}), nil, "deeper"},
		{"not base64", "%%%", nil, "base64"},
		{"not zip", base64.StdEncoding.EncodeToString([]byte("hello")), nil, "not a valid zip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files, msg := unzip(tc.zip, 5, 4096, "main.py")
			if tc.want == nil {
				if msg == "" || !strings.Contains(msg, tc.refused) {
					t.Fatalf("refused with %q, want it to say %q", msg, tc.refused)
				}
				return
			}
			if msg != "" {
				t.Fatalf("refused: %s", msg)
			}
			var names []string
			for _, f := range files {
				names = append(names, f.Name)
			}
			if !reflect.DeepEqual(names, tc.want) {
				t.Fatalf("names %q, want %q", names, tc.want)
			}
		})
	}
}

// FuzzZip checks unzip's promises on any archive: no panic, and whatever
// it accepts is within its bounds and names only clean relative paths.
func FuzzZip(f *testing.F) {
	f.Add(must(makeZip(f, entry{name: "a/b", body: "x"})))
	f.Add(must(makeZip(f, entry{name: "../x", body: "x"})))
	f.Add(must(makeZip(f, entry{name: "l", body: "t", mode: fs.ModeSymlink | 0o777})))
	f.Add(must(makeZip(f, entry{name: "z", body: strings.Repeat("\x00", 100000)})))
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxFiles, maxBytes = 8, 1 << 16
		files, msg := unzip(base64.StdEncoding.EncodeToString(data), maxFiles, maxBytes, "main.py")
		if msg != "" {
			return
		}
		if len(files) > maxFiles {
			t.Fatalf("%d files", len(files))
		}
		var total int
		seen := map[string]bool{}
		for _, f := range files {
			b, err := base64.StdEncoding.DecodeString(f.Content)
			if err != nil {
				t.Fatal(err)
			}
			total += len(b)
			n := f.Name
			if n == "" || n == "main.py" || seen[n] || strings.HasPrefix(n, "/") || strings.Contains(n, "\\") ||
				strings.Contains(n, "\x00") || strings.Count(n, "/") > maxZipDepth {
				t.Fatalf("accepted name %q", n)
			}
			for _, el := range strings.Split(n, "/") {
				if el == ".." || el == "." || el == "" {
					t.Fatalf("accepted name %q", n)
				}
			}
			seen[n] = true
		}
		if total > maxBytes {
			t.Fatalf("%d bytes", total)
		}
	})
}

func must(s string) []byte {
	b, _ := base64.StdEncoding.DecodeString(s)
	return b
}

func testInfo() *info {
	lim := limitsOut{WallTimeMS: 20000, CPUTimeMS: 15000, MemoryBytes: 512000 * 1024, Processes: 120, FileSizeBytes: 4096 * 1024, OutputBytes: 1 << 20}
	return &info{Defaults: lim, Maxima: lim, MaxBodyBytes: 1 << 20, MaxFiles: 8, MaxFilesBytes: 1 << 16}
}

// TestParseSubmission is Judge0's request → native request, and its
// validation answers.
func TestParseSubmission(t *testing.T) {
	envs := map[int]environment{71: {Name: "python", Source: "main.py", Available: true}}
	for _, tc := range []struct {
		name   string
		body   string
		b64    bool
		wait   bool
		want   string // the native body's JSON
		errors fieldErrors
		bad    string // a 400's message
	}{
		{name: "plain", body: `{"source_code":"print(1)","language_id":71,"stdin":"x","command_line_arguments":"a 'b c'","cpu_time_limit":"1.5","memory_limit":2048,"max_file_size":2048}`,
			want: `{"language":"python","files":[{"name":"main.py","content":"cHJpbnQoMSk=","encoding":"base64"}],"main":"main.py","stdin":"x","args":["a","b c"],` +
				`"limits":{"cpu_time_ms":1500,"memory_bytes":2097152,"file_size_bytes":2097152,"output_bytes":1048576}}`},
		{name: "expected output", body: `{"source_code":"cHJpbnQoMSk=","language_id":71,"expected_output":"MQ=="}`, b64: true,
			want: `{"language":"python","files":[{"name":"main.py","content":"cHJpbnQoMSk=","encoding":"base64"}],"main":"main.py","cases":[{"expected_output":"1"}]}`},
		{name: "callback", body: `{"source_code":"1","language_id":71,"callback_url":"https://example.com/cb"}`,
			want: `{"language":"python","files":[{"name":"main.py","content":"MQ==","encoding":"base64"}],"main":"main.py","callback":{"url":"https://example.com/cb","format":"judge0"}}`},
		{name: "blank", body: `{}`, errors: fieldErrors{"source_code": {"can't be blank"}, "language_id": {"can't be blank"}}},
		{name: "unknown language", body: `{"source_code":"1","language_id":89}`, errors: fieldErrors{"language_id": {"language with id 89 doesn't exist"}}},
		{name: "limits", body: `{"source_code":"1","language_id":71,"cpu_time_limit":16,"wall_time_limit":-1,"memory_limit":"lots","cpu_extra_time":6,"stack_limit":128001,"max_processes_and_or_threads":1.5,"number_of_runs":2}`,
			errors: fieldErrors{"cpu_time_limit": {"must be less than or equal to 15"}, "wall_time_limit": {"must be greater than 0"},
				"memory_limit": {"is not a number"}, "cpu_extra_time": {"must be less than or equal to 5"}, "stack_limit": {"must be less than or equal to 128000"},
				"max_processes_and_or_threads": {"must be an integer"}, "number_of_runs": {"must be less than or equal to 1"}}},
		{name: "refused", body: `{"source_code":"1","language_id":71,"enable_network":true,"compiler_options":"-O3","enable_per_process_and_thread_time_limit":"true"}`,
			errors: fieldErrors{"enable_network": {"cannot be true: runbox gives programs no network"},
				"compiler_options":                         {"are not supported: runbox compiles with its environment's own options"},
				"enable_per_process_and_thread_time_limit": {"cannot be true: runbox's limits are the whole box's"}}},
		{name: "callback with wait", body: `{"source_code":"1","language_id":71,"callback_url":"https://example.com/cb"}`, wait: true,
			errors: fieldErrors{"callback_url": {"runbox calls back only for submissions made with wait=false"}}},
		{name: "arguments", body: `{"source_code":"1","language_id":71,"command_line_arguments":"'open"}`,
			errors: fieldErrors{"command_line_arguments": {"No closing quotation"}}},
		{name: "bad base64", body: `{"source_code":"!!!","language_id":71}`, b64: true, bad: "source_code is not valid base64"},
		{name: "not an object", body: `[1]`, bad: "the submission is not a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parseSubmission(json.RawMessage(tc.body), tc.b64, tc.wait, testInfo(), envs)
			switch {
			case tc.errors != nil:
				if fe, ok := err.(fieldErrors); !ok || !reflect.DeepEqual(fe, tc.errors) {
					t.Fatalf("error %v, want %v", err, tc.errors)
				}
			case tc.bad != "":
				if ae, ok := err.(*apiError); !ok || ae.Message != tc.bad || ae.Status != 400 {
					t.Fatalf("error %v, want 400 %q", err, tc.bad)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				got, _ := json.Marshal(s.body)
				if string(got) != tc.want {
					t.Fatalf("native body\n got %s\nwant %s", got, tc.want)
				}
			}
		})
	}
}

func TestEncode(t *testing.T) {
	code := 0
	o := &output{token: "t", status: statusOf(3), stdout: []byte("hi\n"), stderr: []byte{0xff}, exitCode: &code}
	if _, err := o.encode(defaultFields, false); err == nil {
		t.Fatal("invalid UTF-8 answered as text")
	}
	got, err := o.encode([]string{"stdout", "stderr", "exit_code", "compile_output"}, true)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(got)
	if want := `{"compile_output":null,"exit_code":0,"stderr":"/w==","stdout":"aGkK"}`; string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
	if _, err := parseFields("stdout,source_code"); err == nil || err.Error() != "invalid fields: [source_code]" {
		t.Fatalf("fields: %v", err)
	}
}
