package sign

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// header is the statement's first line. It separates the domain: a runbox
// node's key signs nothing else that could be read as a job statement, and
// a later format gets a new version.
const header = "runbox job result v1"

// timeLayout is RFC 3339 in UTC with all nine digits of nanoseconds, so
// that an instant has exactly one spelling.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// FileHash is one returned file's digest: its name in the result and the
// hex SHA-256 of its bytes.
type FileHash struct {
	Name   string
	SHA256 string
}

// Statement is what a node signs about a finished job.
type Statement struct {
	JobID, Node, KeyID, Status       string
	RequestSHA256, ResultSHA256      string // hex SHA-256; see ResultDigest
	Files                            []FileHash
	CreatedAt, StartedAt, FinishedAt time.Time // zero: never happened (a job cancelled before it started)
}

// Text is the statement's canonical text, the bytes that are signed:
//
//	runbox job result v1
//	job_id: <id>
//	status: <status>
//	node: <node>
//	key_id: <key id>
//	request_sha256: <hex>
//	result_sha256: <hex>
//	file: <hex> <name as a JSON string>     (one per file, in the result's order)
//	created_at: <RFC 3339, UTC, 9 digits of nanoseconds, or "-" for a zero time>
//	started_at: …
//	finished_at: …
//
// every line ending in "\n". No value can start a line of its own: ids,
// node, status and key id must be valid UTF-8 without control characters,
// hashes 64 lowercase hex digits, and file names are JSON-quoted.
func (s Statement) Text() (string, error) {
	var b strings.Builder
	b.WriteString(header + "\n")
	line := func(key, value string) { b.WriteString(key + ": " + value + "\n") }
	for _, f := range []struct{ key, value string }{
		{"job_id", s.JobID}, {"status", s.Status}, {"node", s.Node}, {"key_id", s.KeyID},
	} {
		if err := checkWord(f.value); err != nil {
			return "", fmt.Errorf("statement %s %q: %w", f.key, f.value, err)
		}
		line(f.key, f.value)
	}
	for _, f := range []struct{ key, value string }{{"request_sha256", s.RequestSHA256}, {"result_sha256", s.ResultSHA256}} {
		if !isHash(f.value) {
			return "", fmt.Errorf("statement %s %q: not 64 lowercase hex digits", f.key, f.value)
		}
		line(f.key, f.value)
	}
	for i, f := range s.Files {
		if !isHash(f.SHA256) {
			return "", fmt.Errorf("statement file %d sha256 %q: not 64 lowercase hex digits", i, f.SHA256)
		}
		// JSON would replace invalid UTF-8, so the name read back would differ.
		if !utf8.ValidString(f.Name) {
			return "", fmt.Errorf("statement file %d name %q: not valid UTF-8", i, f.Name)
		}
		line("file", f.SHA256+" "+jsonText(f.Name))
	}
	for _, f := range []struct {
		key string
		t   time.Time
	}{{"created_at", s.CreatedAt}, {"started_at", s.StartedAt}, {"finished_at", s.FinishedAt}} {
		if y := f.t.UTC().Year(); !f.t.IsZero() && (y < 1 || y > 9999) {
			return "", fmt.Errorf("statement %s: year %d has no RFC 3339 form", f.key, y)
		}
		line(f.key, timeText(f.t))
	}
	return b.String(), nil
}

// ParseStatement reads a statement's text. It is strict: the lines must be
// exactly those Text writes, in its order, and the text must be the one
// Text would write for what it says (one statement, one spelling).
func ParseStatement(text string) (Statement, error) {
	body, ok := strings.CutSuffix(text, "\n")
	if !ok {
		return Statement{}, errors.New("statement: does not end in a newline")
	}
	lines := strings.Split(body, "\n")
	if lines[0] != header {
		return Statement{}, fmt.Errorf("statement: first line %q, want %q", lines[0], header)
	}
	lines = lines[1:]
	take := func(key string) (string, error) {
		if len(lines) == 0 {
			return "", fmt.Errorf("statement: no %s line", key)
		}
		v, ok := strings.CutPrefix(lines[0], key+": ")
		if !ok {
			return "", fmt.Errorf("statement: line %q where %s was expected", lines[0], key)
		}
		lines = lines[1:]
		return v, nil
	}
	var s Statement
	var err error
	for _, f := range []struct {
		key string
		dst *string
	}{
		{"job_id", &s.JobID}, {"status", &s.Status}, {"node", &s.Node}, {"key_id", &s.KeyID},
		{"request_sha256", &s.RequestSHA256}, {"result_sha256", &s.ResultSHA256},
	} {
		if *f.dst, err = take(f.key); err != nil {
			return Statement{}, err
		}
	}
	for len(lines) > 0 && strings.HasPrefix(lines[0], "file: ") {
		v, _ := take("file")
		sum, quoted, _ := strings.Cut(v, " ")
		var name string
		if err := json.Unmarshal([]byte(quoted), &name); err != nil {
			return Statement{}, fmt.Errorf("statement: file line %q: want <sha256> <name as a JSON string>", v)
		}
		s.Files = append(s.Files, FileHash{Name: name, SHA256: sum})
	}
	for _, f := range []struct {
		key string
		dst *time.Time
	}{{"created_at", &s.CreatedAt}, {"started_at", &s.StartedAt}, {"finished_at", &s.FinishedAt}} {
		v, err := take(f.key)
		if err != nil {
			return Statement{}, err
		}
		if v == "-" {
			continue
		}
		if *f.dst, err = time.Parse(timeLayout, v); err != nil {
			return Statement{}, fmt.Errorf("statement: %s: %w", f.key, err)
		}
	}
	if len(lines) > 0 {
		return Statement{}, fmt.Errorf("statement: unexpected line %q", lines[0])
	}
	// Text checks every value; comparing its text with ours rejects every
	// other spelling (an offset, "\u0061" for "a", a space after a name).
	canonical, err := s.Text()
	if err != nil {
		return Statement{}, err
	}
	if canonical != text {
		return Statement{}, errors.New("statement: not in canonical form")
	}
	return s, nil
}

// checkWord refuses what could break a statement line or read differently
// once decoded: an empty value, invalid UTF-8, control characters (C0, DEL
// and C1, so no "\n", "\r" or NEL).
func checkWord(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return errors.New("has a control character")
	}
	return nil
}

func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(timeLayout)
}

// jsonText is v as compact JSON without HTML escapes. It quotes file names
// in statements and values from a job in messages: a newline in a value
// stays "\n" and cannot start a line of its own.
func jsonText(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // strings and decoded JSON values always encode
	return strings.TrimSuffix(b.String(), "\n")
}
