package result

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/runbox-dev/runbox/internal/jail"
)

// Writer streams JSON to an io.Writer through a small buffer. Output bytes
// go from the jail's buffers to the wire once: escaped as they are copied,
// never converted to a string, a rune slice or a base64 string first. A
// write error sticks (bufio keeps it) and is returned by Flush.
type Writer struct {
	w *bufio.Writer
}

// writeBuffer is the Writer's buffer: the only memory streaming adds.
const writeBuffer = 32 << 10

// NewWriter makes a Writer.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriterSize(w, writeBuffer)} }

// Flush writes what is buffered and returns the first error.
func (w *Writer) Flush() error { return w.w.Flush() }

// Raw writes JSON text as it is (punctuation, keys known to be plain).
func (w *Writer) Raw(s string) { _, _ = w.w.WriteString(s) }

// Key writes "key": (key is plain ASCII chosen by the caller).
func (w *Writer) Key(key string) {
	_ = w.w.WriteByte('"')
	_, _ = w.w.WriteString(key)
	_, _ = w.w.WriteString(`":`)
}

// Int writes a number.
func (w *Writer) Int(n int64) {
	var b [20]byte
	_, _ = w.w.Write(strconv.AppendInt(b[:0], n, 10))
}

// Bool writes true or false.
func (w *Writer) Bool(v bool) {
	if v {
		w.Raw("true")
	} else {
		w.Raw("false")
	}
}

// String writes s as a JSON string.
func (w *Writer) String(s string) { w.Bytes([]byte(s)) }

// Bytes writes b as a JSON string, each byte that is not part of valid
// UTF-8 written as U+FFFD (encoding/json writes the same character, as a
// 6-byte escape). Runs of plain bytes are copied in one piece.
func (w *Writer) Bytes(b []byte) {
	bw := w.w
	_ = bw.WriteByte('"')
	start := 0
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			_, _ = bw.Write(b[start:i])
			switch c {
			case '"', '\\':
				_ = bw.WriteByte('\\')
				_ = bw.WriteByte(c)
			case '\n':
				_, _ = bw.WriteString(`\n`)
			case '\r':
				_, _ = bw.WriteString(`\r`)
			case '\t':
				_, _ = bw.WriteString(`\t`)
			default:
				const hex = "0123456789abcdef"
				_, _ = bw.WriteString(`\u00`)
				_ = bw.WriteByte(hex[c>>4])
				_ = bw.WriteByte(hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			// U+FFFD itself, 3 bytes, rather than the 6 of its escape.
			_, _ = bw.Write(b[start:i])
			_, _ = bw.WriteString("\uFFFD")
			i++
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but end lines in JavaScript;
		// encoding/json escapes them, and so do we.
		if r == '\u2028' || r == '\u2029' {
			_, _ = bw.Write(b[start:i])
			_, _ = bw.WriteString(`\u202`)
			_ = bw.WriteByte("89"[r-'\u2028'])
			i += n
			start = i
			continue
		}
		i += n
	}
	_, _ = bw.Write(b[start:])
	_ = bw.WriteByte('"')
}

// Base64 writes b as a JSON string of its standard base64 encoding
// (base64's alphabet needs no escaping).
func (w *Writer) Base64(b []byte) {
	_ = w.w.WriteByte('"')
	enc := base64.NewEncoder(base64.StdEncoding, w.w)
	_, _ = enc.Write(b)
	_ = enc.Close()
	_ = w.w.WriteByte('"')
}

// Value writes a small value with encoding/json.
func (w *Writer) Value(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte("null")
	}
	_, _ = w.w.Write(b)
}

// Result writes r as the object From(r) marshals to. more, when set, adds
// fields of the caller's after the result's own (it starts each with a
// comma).
func (w *Writer) Result(r jail.Result, more func(*Writer)) {
	w.Raw(`{"status":`)
	w.String(string(r.Status))
	w.Raw(`,"exit_code":`)
	w.Int(int64(r.ExitCode))
	w.Raw(`,"signal":`)
	if r.Signal != 0 {
		w.String(jail.SignalName(r.Signal))
	} else {
		w.Raw("null")
	}
	w.Raw(`,"message":`)
	w.String(r.Message)
	w.Raw(`,"stdout":`)
	w.Bytes(r.Stdout)
	w.Raw(`,"stderr":`)
	w.Bytes(r.Stderr)
	if !utf8.Valid(r.Stdout) {
		w.Raw(`,"stdout_base64":`)
		w.Base64(r.Stdout)
	}
	if !utf8.Valid(r.Stderr) {
		w.Raw(`,"stderr_base64":`)
		w.Base64(r.Stderr)
	}
	w.Raw(`,"stdout_truncated":`)
	w.Bool(r.StdoutTruncated)
	w.Raw(`,"stderr_truncated":`)
	w.Bool(r.StderrTruncated)
	w.Raw(`,"wall_time_ms":`)
	w.Int(r.WallTime.Milliseconds())
	w.Raw(`,"cpu_time_ms":`)
	w.Int(r.CPUTime.Milliseconds())
	w.Raw(`,"memory_bytes":`)
	w.Int(r.Memory)
	if more != nil {
		more(w)
	}
	w.Raw("}")
}
