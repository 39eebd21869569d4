// Package result is the public shape of one run's outcome: the object
// `runbox run --json` prints and the HTTP API returns. It builds that object
// (From) and also streams it (Write) without holding a second copy of the
// output: a server answering a request whose cases printed many megabytes
// must not multiply them in memory.
package result

import (
	"encoding/base64"
	"strings"
	"unicode/utf8"

	"github.com/runbox-dev/runbox/internal/jail"
)

// Result is one run's outcome, as JSON.
//
// Output is carried as a JSON string. Output that is not valid UTF-8 is
// carried twice: "stdout" with every invalid byte replaced by U+FFFD (so it
// stays readable), and "stdout_base64" with the exact bytes; the _base64
// field is absent when the output is valid UTF-8. NUL bytes are valid UTF-8
// and appear as \u0000.
type Result struct {
	Status          jail.Status `json:"status"`
	ExitCode        int         `json:"exit_code"`
	Signal          *string     `json:"signal"`
	Message         string      `json:"message"`
	Stdout          string      `json:"stdout"`
	Stderr          string      `json:"stderr"`
	StdoutBase64    string      `json:"stdout_base64,omitempty"`
	StderrBase64    string      `json:"stderr_base64,omitempty"`
	StdoutTruncated bool        `json:"stdout_truncated"`
	StderrTruncated bool        `json:"stderr_truncated"`
	WallTimeMS      int64       `json:"wall_time_ms"`
	CPUTimeMS       int64       `json:"cpu_time_ms"`
	MemoryBytes     int64       `json:"memory_bytes"`
}

// From converts the jail's result.
func From(r jail.Result) Result {
	out := Result{
		Status:          r.Status,
		ExitCode:        r.ExitCode,
		Message:         r.Message,
		StdoutTruncated: r.StdoutTruncated,
		StderrTruncated: r.StderrTruncated,
		WallTimeMS:      r.WallTime.Milliseconds(),
		CPUTimeMS:       r.CPUTime.Milliseconds(),
		MemoryBytes:     r.Memory,
	}
	out.Stdout, out.StdoutBase64 = Text(r.Stdout)
	out.Stderr, out.StderrBase64 = Text(r.Stderr)
	if r.Signal != 0 {
		name := jail.SignalName(r.Signal)
		out.Signal = &name
	}
	return out
}

// Text is b as a readable string (every invalid UTF-8 sequence replaced by
// U+FFFD) and, when b is not valid UTF-8, its exact bytes in base64 ("" when
// it is). Each invalid byte becomes one U+FFFD, as encoding/json and a
// []rune conversion would do, but without the rune slice: that took four
// bytes per input byte on top of the result.
func Text(b []byte) (string, string) {
	if utf8.Valid(b) {
		return string(b), ""
	}
	return validUTF8(b), base64.StdEncoding.EncodeToString(b)
}

// validUTF8 replaces each invalid byte of b by U+FFFD. (strings.ToValidUTF8
// would replace a whole run of invalid bytes by one U+FFFD, which is not
// what runbox has always printed nor what the streaming writer does.)
func validUTF8(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b) + len(b)/2)
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			sb.WriteString("\uFFFD")
		} else {
			sb.Write(b[:n])
		}
		b = b[n:]
	}
	return sb.String()
}
