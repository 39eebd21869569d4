package client

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error is a refusal of the server: an RFC 9457 problem (4xx for a bad
// request, 429 and 503 when it is busy, 5xx when runbox failed), decoded.
// Match it with errors.As. A program that fails to compile or run is not
// an Error: it is a result with its status.
type Error struct {
	Status    int          `json:"status"`
	Title     string       `json:"title,omitempty"`
	Detail    string       `json:"detail,omitempty"`
	Type      string       `json:"type,omitempty"`
	Instance  string       `json:"instance,omitempty"`
	Errors    []FieldError `json:"errors,omitempty"`
	RequestID string       `json:"request_id,omitempty"` // matches the server's log line
	// RetryAfter is the Retry-After of a 429 or 503 answer (zero if none).
	RetryAfter time.Duration `json:"-"`
}

// FieldError names the part of the request that broke a rule.
type FieldError struct {
	Location string `json:"location,omitempty"` // e.g. body.files[2].name, query.wait, path.id
	Message  string `json:"message"`            // the rule
	Value    any    `json:"value,omitempty"`    // the offending value, when small
}

// Error reads "runbox: 422 validation failed: body.language: expected
// length <= 32 (request 1a2b…)": the status, the detail, each field and
// its rule, and the request id.
func (e *Error) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "runbox: %d", e.Status)
	switch {
	case e.Detail != "":
		sb.WriteString(" " + e.Detail)
	case e.Title != "":
		sb.WriteString(" " + e.Title)
	}
	sep := ": "
	for _, f := range e.Errors {
		field := f.Message
		if f.Location != "" {
			field = f.Location + ": " + f.Message
		}
		// runbox's own checks name the field in the detail already.
		if strings.Contains(e.Detail, field) {
			continue
		}
		sb.WriteString(sep + field)
		sep = "; "
	}
	if e.RequestID != "" {
		sb.WriteString(" (request " + e.RequestID + ")")
	}
	return sb.String()
}

// Field returns the first field error at location, or nil.
func (e *Error) Field(location string) *FieldError {
	for i := range e.Errors {
		if e.Errors[i].Location == location {
			return &e.Errors[i]
		}
	}
	return nil
}

// readError turns an answer of status 400 or more into an *Error. A body
// that is not a problem (a proxy's page) becomes its Detail, shortened.
func readError(resp *http.Response) *Error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	e := &Error{}
	if err := json.Unmarshal(b, e); err != nil || e.Status == 0 {
		e = &Error{Detail: strings.TrimSpace(string(b))}
		if len(e.Detail) > 200 {
			e.Detail = strings.ToValidUTF8(e.Detail[:200], "") + "…"
		}
	}
	e.Status = resp.StatusCode
	if e.Title == "" {
		e.Title = http.StatusText(resp.StatusCode)
	}
	if e.RequestID == "" {
		e.RequestID = resp.Header.Get("X-Request-Id")
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}
