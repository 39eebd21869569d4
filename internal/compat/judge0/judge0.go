// Package judge0 serves Judge0 CE's API (judge0/judge0: /submissions,
// /languages, /statuses, /about, /config_info) on runbox, so that a
// Judge0 client works by changing its base URL (runbox mounts it at
// /judge0). It owns the translation only: a submission becomes one native
// POST /v1/run (wait=true) or POST /v1/jobs (wait=false), called in
// process through compat.Native, and the native answer becomes Judge0's
// submission. Validation, limits, admission, queueing and the memory
// budget are the native API's; the package has no execution path, limit
// logic or file store of its own. The differences from Judge0 are listed
// in README.md next to this file.
package judge0

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/runbox-dev/runbox/internal/compat"
)

// handler serves Judge0's routes (the mount point's prefix removed).
type handler struct {
	n   *compat.Native
	mux *http.ServeMux
}

// New serves Judge0 CE's API on n (runbox's native API).
func New(n *compat.Native) http.Handler {
	h := &handler{n: n, mux: http.NewServeMux()}
	// Patterns carry no method, so that a wrong method gets Judge0's JSON
	// error rather than the mux's plain-text 405.
	h.route("/languages", http.MethodGet, h.languages)
	h.route("/languages/all", http.MethodGet, h.languages)
	h.route("/languages/{id}", http.MethodGet, h.language)
	h.route("/statuses", http.MethodGet, h.statuses)
	h.route("/about", http.MethodGet, h.about)
	h.route("/version", http.MethodGet, h.version)
	h.route("/config_info", http.MethodGet, h.configInfo)
	h.route("/submissions", http.MethodPost, h.create)
	h.route("/submissions/batch", "", h.batch)
	h.route("/submissions/{token}", http.MethodGet, h.show)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Status: http.StatusNotFound, Message: "not found"})
	})
	return h
}

func (h *handler) route(pattern, method string, f func(http.ResponseWriter, *http.Request) error) {
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if method != "" && r.Method != method {
			w.Header().Set("Allow", method)
			writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Message: "method not allowed"})
			return
		}
		if err := f(w, r); err != nil {
			var ae *apiError
			var fe fieldErrors
			switch {
			case errors.As(err, &fe):
				writeJSON(w, http.StatusUnprocessableEntity, fe)
			case errors.As(err, &ae):
				writeError(w, ae)
			default:
				// Only the client's going away ends here: nobody reads an
				// answer.
			}
		}
	})
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// apiError is Judge0's error body, {"error": message}.
type apiError struct {
	Status     int
	Message    string
	RetryAfter string
}

func (e *apiError) Error() string { return e.Message }

func badRequest(format string, a ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, a...)}
}

// fieldErrors is Judge0's 422 body (Rails' model errors): each field's
// messages.
type fieldErrors map[string][]string

func (f fieldErrors) Error() string { return fmt.Sprint(map[string][]string(f)) }

func (f fieldErrors) add(field, msg string) { f[field] = append(f[field], msg) }

func writeError(w http.ResponseWriter, e *apiError) {
	if e.RetryAfter != "" {
		w.Header().Set("Retry-After", e.RetryAfter)
	}
	writeJSON(w, e.Status, map[string]string{"error": e.Message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// nativeError is the answer to a failed native call. Problems about the
// request's content become Judge0's 422 on the field they concern; a full
// server is Judge0's 503 "queue is full"; anything else is runbox's
// failure, a 500 that names it.
func nativeError(ctx context.Context, err error) error {
	var p *compat.Problem
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &p) && (p.Status == http.StatusTooManyRequests || p.Status == http.StatusServiceUnavailable):
		return &apiError{Status: http.StatusServiceUnavailable, Message: "queue is full", RetryAfter: p.RetryAfter}
	case errors.As(err, &p) && p.Status == http.StatusRequestEntityTooLarge:
		return &apiError{Status: p.Status, Message: p.Detail}
	case errors.As(err, &p) && (p.Status == http.StatusUnprocessableEntity || p.Status == http.StatusBadRequest):
		fe := fieldErrors{}
		if len(p.Errors) == 0 {
			fe.add("base", p.Detail)
		}
		for _, e := range p.Errors {
			fe.add(fieldOf(e.Location), e.Message)
		}
		return fe
	}
	return &apiError{Status: http.StatusInternalServerError, Message: "runbox failed: " + err.Error()}
}

// fieldOf names the Judge0 field a native error location concerns.
func fieldOf(loc string) string {
	switch loc {
	case "body.limits.cpu_time_ms":
		return "cpu_time_limit"
	case "body.limits.wall_time_ms":
		return "wall_time_limit"
	case "body.limits.memory_bytes":
		return "memory_limit"
	case "body.limits.processes":
		return "max_processes_and_or_threads"
	case "body.limits.file_size_bytes", "body.limits.output_bytes":
		return "max_file_size"
	case "body.stdin", "body.cases[0].stdin":
		return "stdin"
	case "body.cases[0].expected_output":
		return "expected_output"
	case "body.args", "body.cases[0].args":
		return "command_line_arguments"
	case "body.callback.url":
		return "callback_url"
	case "body.language":
		return "language_id"
	case "body.files[0]", "body.files[0].content":
		return "source_code"
	}
	if len(loc) > len("body.files") && loc[:len("body.files")] == "body.files" {
		return "additional_files"
	}
	return "base"
}

// atoiID parses a numeric path element.
func atoiID(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}
