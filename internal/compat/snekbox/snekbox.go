// Package snekbox serves snekbox's API (python-discord/snekbox, POST
// /eval) on runbox, so that a snekbox client works by changing its base
// URL (runbox mounts it at /snekbox). It owns the translation only: a
// request becomes one native POST /v1/run of runbox's python interpreter,
// called in process through compat.Native, and the native answer becomes
// snekbox's {stdout, returncode, files}. Validation, limits, admission
// and the memory budget are the native API's.
//
// What differs from snekbox, and why:
//
//   - Limits are the runbox server's defaults (its wall and CPU time,
//     memory, processes, output, disk): snekbox has none per request
//     either, but its own defaults are 6 s, 70 MiB, 15 processes and 1 MB
//     of output.
//   - executable_path names no file on this server: snekbox's default path
//     and any path whose base name starts with "python" run the
//     interpreter of runbox's python environment (one version); anything
//     else is 400 "executable_path does not exist".
//   - The working directory (and HOME) is /box, not /home.
//   - Returned files are the regular files the program created or changed
//     (an input file comes back when its content changed, where snekbox
//     compares modification times), never through a symlink, and none
//     after a run killed by a limit. Names with a backslash, and a file
//     that is also another file's directory, are refused (400) by the
//     native API's name rules, where snekbox accepts the first and fails
//     at the second.
//   - A body that is not application/json (forms included) is 415; one
//     larger than the native max_body_bytes is 413; a full server is 429
//     with Retry-After. snekbox has no such bound.
package snekbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sync"

	"github.com/runbox-dev/runbox/internal/compat"
)

const (
	// DefaultExecutablePath is snekbox's interpreter when a request names
	// none.
	DefaultExecutablePath = "/snekbin/python/default/bin/python"
	// interpreter is what runbox's python environment runs
	// (internal/env/defaults/python.toml: run = ["/usr/bin/python3", …]).
	interpreter = "/usr/bin/python3"
	// pythonEnvironment is the native environment whose availability
	// decides whether executable_path can be served.
	pythonEnvironment = "python"
	// maxAnswerFiles is snekbox's files_limit: files returned at most.
	maxAnswerFiles = 100
	// maxJSONDepth bounds the nesting of a request body, which is parsed
	// recursively.
	maxJSONDepth = 256
)

// handler serves POST /eval.
type handler struct {
	n *compat.Native

	// mu guards what is read once from the native GET /v1/info.
	mu      sync.Mutex
	maxBody int64 // 0 until read
}

// New serves snekbox's API on n (runbox's native API).
func New(n *compat.Native) http.Handler { return &handler{n: n} }

// apiError is snekbox's (falcon's) error body; falcon leaves out a
// description it was not given.
type apiError struct {
	Status      int    `json:"-"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
	RetryAfter  string `json:"-"`
}

func (e *apiError) Error() string { return e.Title + ": " + e.Description }

func badRequest(title, description string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Title: title, Description: description}
}

// evalAnswer is the body of a 200 answer, its keys in snekbox's order.
type evalAnswer struct {
	Stdout     string     `json:"stdout"`
	Returncode *int       `json:"returncode"`
	Files      []fileJSON `json:"files"`
}

type fileJSON struct {
	Path    string `json:"path"`
	Size    int    `json:"size"`
	Content []byte `json:"content"` // base64
}

// evalError is snekbox's answer when the evaluation itself failed before
// or around the program (its EvalError): 200, no returncode, the reason
// as stdout.
func evalError(msg string) *evalAnswer {
	return &evalAnswer{Stdout: msg, Files: []fileJSON{}}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/eval" {
		writeError(w, &apiError{Status: http.StatusNotFound, Title: "404 Not Found"})
		return
	}
	switch r.Method {
	case http.MethodPost:
	case http.MethodOptions:
		// falcon answers OPTIONS itself, with the resource's methods.
		w.Header().Set("Allow", "POST")
		w.WriteHeader(http.StatusOK)
		return
	default:
		w.Header().Set("Allow", "POST")
		writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Title: "405 Method Not Allowed"})
		return
	}
	// falcon takes a body without a content type as its default media
	// type, JSON.
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			writeError(w, &apiError{Status: http.StatusUnsupportedMediaType, Title: "415 Unsupported Media Type",
				Description: ct + " is an unsupported media type."})
			return
		}
	}
	ans, err := h.eval(w, r)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			writeError(w, ae)
			return
		}
		// Only the client's going away ends here: nobody reads an answer.
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ans)
}

// eval answers one request, or returns the *apiError to send.
func (h *handler) eval(w http.ResponseWriter, r *http.Request) (*evalAnswer, error) {
	ctx := r.Context()
	hdr := compat.RequestHeader(w)
	limit, err := h.bodyLimit(ctx, hdr)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, &apiError{Status: http.StatusRequestEntityTooLarge, Title: "413 Payload Too Large",
				Description: fmt.Sprintf("the body is larger than %d bytes (the server's max_body_bytes)", limit)}
		}
		return nil, badRequest("Invalid JSON", "Could not read the body - "+err.Error())
	}
	req, err := parseRequest(body)
	if err != nil {
		return nil, err
	}
	if ok, err := h.pythonAvailable(ctx, hdr); err != nil {
		return nil, err
	} else if !ok {
		return nil, badRequest("executable_path does not exist", "this runbox server has no python environment")
	}
	if req.fileError != "" {
		return evalError(req.fileError), nil
	}
	if req.nulArg {
		// What snekbox's subprocess.Popen answers.
		return evalError("ValueError: embedded null byte"), nil
	}
	var res runResponse
	_, err = h.n.Call(ctx, http.MethodPost, "/v1/run", hdr, req.native(), &res)
	if err != nil {
		return req.nativeError(ctx, hdr.Get("X-Request-Id"), err)
	}
	return answer(req, &res), nil
}

// runResponse is what the adapter reads of a native POST /v1/run answer
// (api.RunResponse; its run is a result.Result).
type runResponse struct {
	Run   *runResult `json:"run"`
	Files []struct {
		Name       string `json:"name"`
		NameBase64 string `json:"name_base64"`
		Size       int    `json:"size"`
		Content    []byte `json:"content"`
	} `json:"files"`
}

// runResult is what the adapter reads of a native result.
type runResult struct {
	Status       string  `json:"status"`
	ExitCode     int     `json:"exit_code"`
	Signal       *string `json:"signal"`
	Stdout       string  `json:"stdout"`
	Stderr       string  `json:"stderr"`
	StdoutBase64 string  `json:"stdout_base64"`
	StderrBase64 string  `json:"stderr_base64"`
}

// info is what the adapter reads of the native GET /v1/info.
type info struct {
	MaxBodyBytes int64 `json:"max_body_bytes"`
}

// bodyLimit is the native API's max_body_bytes: a snekbox body carries
// its files in base64, as the native body does, so it is held to the
// same bound.
func (h *handler) bodyLimit(ctx context.Context, hdr http.Header) (int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.maxBody > 0 {
		return h.maxBody, nil
	}
	var in info
	if _, err := h.n.Call(ctx, http.MethodGet, "/v1/info", hdr, nil, &in); err != nil {
		return 0, serverError(ctx, err)
	}
	if in.MaxBodyBytes <= 0 {
		return 0, serverError(ctx, errors.New("the native info has no max_body_bytes"))
	}
	h.maxBody = in.MaxBodyBytes
	return h.maxBody, nil
}

// pythonAvailable says whether the native python environment is
// available. It is asked each time: environments are data the operator
// may reload.
func (h *handler) pythonAvailable(ctx context.Context, hdr http.Header) (bool, error) {
	var envs []struct {
		Name      string `json:"name"`
		Available bool   `json:"available"`
	}
	if _, err := h.n.Call(ctx, http.MethodGet, "/v1/environments", hdr, nil, &envs); err != nil {
		return false, serverError(ctx, err)
	}
	for _, e := range envs {
		if e.Name == pythonEnvironment {
			return e.Available, nil
		}
	}
	return false, nil
}

// serverError is the answer to a failed native call that is not about
// the request's content.
func serverError(ctx context.Context, err error) error {
	var p *compat.Problem
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &p) && (p.Status == http.StatusTooManyRequests || p.Status == http.StatusServiceUnavailable):
		return &apiError{Status: p.Status, Title: fmt.Sprintf("%d %s", p.Status, http.StatusText(p.Status)), Description: p.Detail, RetryAfter: p.RetryAfter}
	case errors.As(err, &p) && p.Status == http.StatusRequestEntityTooLarge:
		return &apiError{Status: p.Status, Title: "413 Payload Too Large", Description: p.Detail}
	}
	return &apiError{Status: http.StatusInternalServerError, Title: "500 Internal Server Error", Description: "runbox failed: " + err.Error()}
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.RetryAfter != "" {
		w.Header().Set("Retry-After", e.RetryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(e)
}
