// Package result is the public shape of one run's outcome: the object
// `runbox run --json` prints and the HTTP API returns.
package result

import (
	"encoding/base64"
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
	out.Stdout, out.StdoutBase64 = text(r.Stdout)
	out.Stderr, out.StderrBase64 = text(r.Stderr)
	if r.Signal != 0 {
		name := jail.SignalName(r.Signal)
		out.Signal = &name
	}
	return out
}

func text(b []byte) (string, string) {
	if utf8.Valid(b) {
		return string(b), ""
	}
	return string([]rune(string(b))), base64.StdEncoding.EncodeToString(b)
}
