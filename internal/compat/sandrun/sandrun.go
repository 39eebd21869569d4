// Package sandrun serves Sandrun's HTTP API (/submit, /status, /logs,
// /outputs, /download, /health, /) on runbox, so that Sandrun's clients
// (its Python client, web frontends, MCP server, trusted-pool coordinator)
// work by changing their base URL (runbox mounts it at /sandrun). It owns
// the translation only: a submission becomes one native POST /v1/jobs,
// called in process through compat.Native, and the native job becomes
// Sandrun's answers. Validation, limits, admission, queueing, signing and
// retention are the native API's; the package has no execution path or
// file store of its own. The differences from Sandrun are listed in
// README.md next to this file.
package sandrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/runbox-dev/runbox/internal/compat"
)

// handler serves Sandrun's routes (the mount point's prefix removed).
type handler struct {
	n   *compat.Native
	mux *http.ServeMux
}

// New serves Sandrun's API on n (runbox's native API).
func New(n *compat.Native) http.Handler {
	h := &handler{n: n, mux: http.NewServeMux()}
	h.mux.HandleFunc("POST /submit", h.wrap(h.submit))
	h.mux.HandleFunc("GET /status/{id}", h.wrap(h.status))
	h.mux.HandleFunc("GET /logs/{id}", h.wrap(h.logs))
	h.mux.HandleFunc("GET /outputs/{id}", h.wrap(h.outputs))
	h.mux.HandleFunc("GET /download/{id}", h.wrap(h.downloadAll))
	h.mux.HandleFunc("GET /download/{id}/{path...}", h.wrap(h.download))
	h.mux.HandleFunc("GET /stream/{id}", h.wrap(h.stream))
	h.mux.HandleFunc("GET /health", h.wrap(h.health))
	h.mux.HandleFunc("GET /{$}", h.wrap(h.info))
	// Sandrun answers every unknown GET with its service info; runbox
	// answers 404 in Sandrun's error shape (see README.md).
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Status: http.StatusNotFound, Message: "Not found"})
	})
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Sandrun sends this header on every answer; its browser frontends
	// depend on it.
	w.Header().Set("Access-Control-Allow-Origin", "*")
	h.mux.ServeHTTP(w, r)
}

// wrap writes f's error as Sandrun's {"error": ...}. A nil error means f
// answered.
func (h *handler) wrap(f func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := f(w, r)
		var ae *apiError
		switch {
		case err == nil:
		case errors.As(err, &ae):
			writeError(w, ae)
		default:
			// Only the client's going away ends here: nobody reads an
			// answer.
		}
	}
}

// apiError is Sandrun's error body, {"error": message}.
type apiError struct {
	Status     int
	Message    string
	RetryAfter string
}

func (e *apiError) Error() string { return e.Message }

func badRequest(format string, a ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, a...)}
}

var errJobNotFound = &apiError{Status: http.StatusNotFound, Message: "Job not found"}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.RetryAfter != "" {
		w.Header().Set("Retry-After", e.RetryAfter)
	}
	writeJSON(w, e.Status, map[string]string{"error": e.Message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// nativeError is the answer to a failed native call: the request's fault
// is Sandrun's 400, a full server Sandrun's 429, a too large request 413,
// and anything else runbox's failure, a 500 that says so.
func nativeError(ctx context.Context, err error) error {
	var p *compat.Problem
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &p) && (p.Status == http.StatusTooManyRequests || p.Status == http.StatusServiceUnavailable):
		return &apiError{Status: http.StatusTooManyRequests, Message: "Rate limit exceeded", RetryAfter: p.RetryAfter}
	case errors.As(err, &p) && p.Status == http.StatusRequestEntityTooLarge:
		return &apiError{Status: p.Status, Message: "Request too large: " + p.Error()}
	case errors.As(err, &p) && p.Status >= 400 && p.Status < 500:
		return badRequest("Invalid job: %s", p.Error())
	}
	return &apiError{Status: http.StatusInternalServerError, Message: "runbox failed: " + err.Error()}
}

// job is a native job (GET /v1/jobs/{id}) as far as the adapter reads it.
type job struct {
	ID            string     `json:"id"`
	RequestSHA256 string     `json:"request_sha256"`
	Status        string     `json:"status"`
	Error         string     `json:"error"`
	Result        *runResult `json:"result"`
	Signature     *signature `json:"signature"`
	Node          string     `json:"node"`
	CreatedAt     string     `json:"created_at"`
	StartedAt     string     `json:"started_at"`
	FinishedAt    string     `json:"finished_at"`
}

type runResult struct {
	Run   *run      `json:"run"`
	Files []fileOut `json:"files"`
	// FilesTruncated: the box held more than the native bounds return.
	FilesTruncated bool `json:"files_truncated"`
}

type run struct {
	Status      string  `json:"status"`
	ExitCode    int     `json:"exit_code"`
	Signal      *string `json:"signal"`
	Message     string  `json:"message"`
	Stdout      string  `json:"stdout"`
	Stderr      string  `json:"stderr"`
	WallTimeMS  int64   `json:"wall_time_ms"`
	CPUTimeMS   int64   `json:"cpu_time_ms"`
	MemoryBytes int64   `json:"memory_bytes"`
}

type fileOut struct {
	Name       string `json:"name"`
	NameBase64 string `json:"name_base64"`
	Size       int    `json:"size"`
	Content    []byte `json:"content"`
}

// signature is runbox's signature of a job's result (native sign.Signature).
type signature struct {
	Algorithm string `json:"algorithm"`
	KeyID     string `json:"key_id"`
	Statement string `json:"statement"`
	Value     string `json:"value"`
}

// getJob is the native job id. Any native 4xx (no such job, an id of
// the wrong form) is Sandrun's "Job not found".
func (h *handler) getJob(w http.ResponseWriter, r *http.Request) (*job, error) {
	ctx := r.Context()
	id := r.PathValue("id")
	var j job
	_, err := h.n.Call(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id), compat.RequestHeader(w), nil, &j)
	var p *compat.Problem
	switch {
	case err == nil:
		return &j, nil
	case errors.As(err, &p) && p.Status >= 400 && p.Status < 500 && p.Status != http.StatusTooManyRequests:
		return nil, errJobNotFound
	}
	return nil, nativeError(ctx, err)
}
