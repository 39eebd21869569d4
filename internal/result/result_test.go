package result

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/jail"
)

// streamed writes r with the streaming Writer.
func streamed(t testing.TB, r jail.Result) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Result(r, nil)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sameJSON checks that the streamed object decodes to what From marshals to.
func sameJSON(t testing.TB, r jail.Result) {
	t.Helper()
	got := streamed(t, r)
	want, err := json.Marshal(From(r))
	if err != nil {
		t.Fatal(err)
	}
	var g, w map[string]any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("streamed JSON does not decode: %v\n%q", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("streamed %s\nFrom     %s", got, want)
	}
}

func TestWriteMatchesFrom(t *testing.T) {
	for name, r := range map[string]jail.Result{
		"ok":           {Status: jail.StatusOK, Stdout: []byte("hello\n"), WallTime: 3 * time.Millisecond, Memory: 1 << 20},
		"invalid":      {Status: jail.StatusRuntimeError, ExitCode: 3, Stdout: []byte("a\xff\xfeb\xc3"), Stderr: []byte("\x00\x01\x1f\"\\\t\r\n")},
		"signal":       {Status: jail.StatusSignaled, ExitCode: -1, Signal: 11, Message: "killed by SIGSEGV <&>"},
		"unicode":      {Status: jail.StatusOK, Stdout: []byte("é€😀\u2028\u2029\ufffd"), StdoutTruncated: true},
		"empty":        {},
		"long invalid": {Status: jail.StatusOutputLimit, Stdout: bytes.Repeat([]byte{0xff, 'x', 0xe2, 0x82}, 10000)},
	} {
		t.Run(name, func(t *testing.T) { sameJSON(t, r) })
	}
}

// Text keeps the documented rule: every invalid byte becomes one U+FFFD,
// as a []rune conversion did.
func TestTextReplacesEachInvalidByte(t *testing.T) {
	for _, in := range []string{"a\xff\xfeb", "\xe2\x82", "ok", "\xf0\x9f\x98", "x\xc3\x28"} {
		got, b64 := Text([]byte(in))
		if want := string([]rune(in)); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
		if (b64 == "") != (got == in) {
			t.Errorf("Text(%q): base64 %q", in, b64)
		}
	}
}

// Streaming a result allocates a bounded amount whatever the output size:
// no copy of the output is made.
func TestWriteDoesNotCopyOutput(t *testing.T) {
	out := bytes.Repeat([]byte{0xff, 'a', '"'}, 1<<20) // 3 MiB, invalid UTF-8
	r := jail.Result{Status: jail.StatusOK, Stdout: out, Stderr: out}
	allocs := testing.AllocsPerRun(3, func() {
		w := NewWriter(discard{})
		w.Result(r, nil)
		_ = w.Flush()
	})
	if allocs > 20 {
		t.Fatalf("%v allocations to stream 6 MiB of output", allocs)
	}
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// FuzzWrite: whatever bytes a program prints, the streamed object is valid
// JSON and says the same as the one From builds.
func FuzzWrite(f *testing.F) {
	f.Add([]byte("hello\n"), []byte(""), "")
	f.Add([]byte("a\xff\xfe"), []byte("\x00\u2028"), "msg \"x\"")
	f.Add([]byte("\xed\xa0\x80"), []byte("\xf4\x90\x80\x80"), "\x7f")
	f.Fuzz(func(t *testing.T, stdout, stderr []byte, msg string) {
		sameJSON(t, jail.Result{Status: jail.StatusRuntimeError, ExitCode: 1, Message: msg, Stdout: stdout, Stderr: stderr})
	})
}
