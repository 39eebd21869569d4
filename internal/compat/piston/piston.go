// Package piston serves the Piston v2 API (engineer-man/piston) over
// runbox's native API, so that Piston clients work against runbox by
// changing their base URL to http://host:port/piston. It is a
// translation: each Piston request becomes a native request made in
// process (compat.Native, or a native run stream for /api/v2/connect) and
// the native answer becomes Piston's. It has no execution path, limit or
// file handling of its own: validation, limits, admission and the memory
// budget are the native API's (the adapter reads the maxima from
// /v1/info only to word a refusal as Piston does).
//
// Routes, relative to the mount point:
//
//	GET    /api/v2/runtimes   the available environments
//	POST   /api/v2/execute    run a program
//	GET    /api/v2/packages   every environment, installed = available
//	POST   /api/v2/packages   501: environments are the operator's
//	DELETE /api/v2/packages   501
//	GET    /api/v2/connect    the interactive WebSocket protocol
//
// What differs from Piston, and why:
//
//   - Versions are derived from each environment's version text (see
//     semver); there is one version per language, and a version selector
//     matches as described at matches.
//   - "output" is stdout followed by stderr, not the two interleaved:
//     runbox keeps the streams apart and does not record their order.
//   - Limits left out (or -1) take the runbox server's defaults, not
//     Piston's 3 s / 10 s; a limit above the server's maxima is refused
//     with Piston's "cannot exceed the configured limit" message. Output
//     is bounded by the server's output limit per stream, not Piston's
//     1024 characters; going over it is OL or EL as in Piston.
//   - A program killed for its memory is SG with SIGKILL, as isolate
//     reports a cgroup OOM kill; times are whole milliseconds. Messages
//     are Piston's where they follow from the result and runbox's where
//     runbox knows more (see toStage).
//   - The compile step gets every file with the main file's extension
//     (the environment's rule); Piston's gets the utf8 files. The main
//     file is the first utf8 file in both.
//   - Files are named file{i}.code when unnamed, as in Piston; Piston's
//     language packages then add the extension their compiler wants,
//     runbox's environments do not, so compiled languages need named
//     files (main.c) — unless the native API tells the environment's
//     source file name, which is then used (see unnamed).
//   - Invalid hex or base64 content is refused (400); Node decodes what
//     it can and drops the rest.
//   - A request body may be application/json or text/plain (the npm
//     piston-client sends its JSON as text/plain, which Piston itself
//     refuses); anything else is 415 as in Piston. A malformed body is
//     400 {message} (Piston answers 400 {stack}).
//   - When runbox's queue is full the answer is 429 (or 503) with
//     Retry-After; Piston's queue has no bound.
//   - Names and aliases are the environments' (runbox's python,
//     javascript, c, c++, bash, go, java, perl and rust are Piston's
//     names too); Piston's optional "runtime" field is not sent.
//   - POST and DELETE /api/v2/packages answer 501: runbox's environments
//     are configured by its operator, not installed over the API.
//   - On /api/v2/connect a valid signal is accepted and not delivered:
//     the native run stream has no signal message (Piston itself emits
//     it to an event nobody listens to). The init message's stdin is
//     ignored there, as Piston ignores it.
package piston

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/runbox-dev/runbox/internal/compat"
)

// Bounds of the adapter.
const (
	// bodyFactor times the native max_body_bytes bounds a Piston body:
	// hex content takes twice the bytes it stands for.
	bodyFactor = 2
)

// Options are the adapter's optional dependencies.
type Options struct {
	// Stream opens native run streams for /api/v2/connect (see
	// InProcess); without it that route answers 501.
	Stream Stream
	// Log receives the failures of runbox (5xx); nil discards them.
	Log *slog.Logger
}

type handler struct {
	n      *compat.Native
	stream Stream
	log    *slog.Logger
}

// New serves the Piston v2 API over n, without /api/v2/connect.
func New(n *compat.Native) http.Handler { return NewWith(n, Options{}) }

// NewWith serves the Piston v2 API over n, with options.
func NewWith(n *compat.Native, o Options) http.Handler {
	h := &handler{n: n, stream: o.Stream, log: o.Log}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Piston refuses a body that is not JSON before it routes (api/v2.js).
	if strings.HasPrefix(r.URL.Path, "/api/v2/") && r.Method != http.MethodGet && r.Method != http.MethodHead &&
		r.Method != http.MethodOptions && !jsonBody(r) {
		writeMessage(w, http.StatusUnsupportedMediaType, "requests must be of type application/json")
		return
	}
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch {
	case r.URL.Path == "/api/v2/runtimes" && get:
		h.runtimes(w, r)
	case r.URL.Path == "/api/v2/execute" && r.Method == http.MethodPost:
		h.execute(w, r)
	case r.URL.Path == "/api/v2/packages" && get:
		h.packages(w, r)
	case r.URL.Path == "/api/v2/packages" && (r.Method == http.MethodPost || r.Method == http.MethodDelete):
		writeMessage(w, http.StatusNotImplemented,
			"runbox does not install or uninstall packages over the API: its environments are configured by its operator (see GET /api/v2/runtimes)")
	case r.URL.Path == "/api/v2/connect" && r.Method == http.MethodGet:
		h.connect(w, r)
	case r.URL.Path == "/" && get:
		writeJSON(w, http.StatusOK, message{"runbox, serving the Piston v2 API"})
	default:
		writeMessage(w, http.StatusNotFound, "Not Found")
	}
}

// jsonBody reports whether a body is one the adapter reads: JSON, or
// text/plain (what fetch sends a string as, and so the npm
// piston-client's requests).
func jsonBody(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && (mt == "application/json" || mt == "text/plain")
}

// runtimeEntry is an entry of GET /api/v2/runtimes.
type runtimeEntry struct {
	Language string   `json:"language"`
	Version  string   `json:"version"`
	Aliases  []string `json:"aliases"`
}

func (h *handler) runtimes(w http.ResponseWriter, r *http.Request) {
	envs, err := h.environments(r.Context(), w)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := []runtimeEntry{}
	for _, e := range envs {
		if e.Available {
			out = append(out, runtimeEntry{Language: e.Name, Version: semver(e.Version), Aliases: orEmpty(e.Aliases)})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// pkg is an entry of GET /api/v2/packages.
type pkg struct {
	Language        string `json:"language"`
	LanguageVersion string `json:"language_version"`
	Installed       bool   `json:"installed"`
}

func (h *handler) packages(w http.ResponseWriter, r *http.Request) {
	envs, err := h.environments(r.Context(), w)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := []pkg{}
	for _, e := range envs {
		out = append(out, pkg{Language: e.Name, LanguageVersion: semver(e.Version), Installed: e.Available})
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) execute(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	info, err := h.info(ctx, w)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, bodyFactor*info.MaxBodyBytes))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			h.fail(w, r, &failure{http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is larger than %d bytes", mb.Limit), ""})
			return
		}
		h.fail(w, r, &failure{http.StatusBadRequest, "reading the request body: " + err.Error(), ""})
		return
	}
	j, err := h.job(ctx, w, body, info)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var out nativeResponse
	if _, err := h.n.Call(ctx, http.MethodPost, "/v1/run", compat.RequestHeader(w), j.body, &out); err != nil {
		h.fail(w, r, fromNative(err))
		return
	}
	writeJSON(w, http.StatusOK, toResult(&out))
}

// environments lists the native API's environments.
func (h *handler) environments(ctx context.Context, w http.ResponseWriter) ([]nativeEnv, error) {
	var envs []nativeEnv
	if _, err := h.n.Call(ctx, http.MethodGet, "/v1/environments", compat.RequestHeader(w), nil, &envs); err != nil {
		return nil, fromNative(err)
	}
	return envs, nil
}

// info reads the native API's limits. It is asked on every request: an
// in-process call, cheaper than a cache that could go stale.
func (h *handler) info(ctx context.Context, w http.ResponseWriter) (*nativeInfo, error) {
	var info nativeInfo
	if _, err := h.n.Call(ctx, http.MethodGet, "/v1/info", compat.RequestHeader(w), nil, &info); err != nil {
		return nil, fromNative(err)
	}
	return &info, nil
}

// failure is an answer in Piston's error format: {message}.
type failure struct {
	status     int
	message    string
	retryAfter string
}

func (f *failure) Error() string { return f.message }

// fromNative turns a failed native call into Piston's answer: a bad
// request (native 400 or 422) is Piston's 400 naming the field in
// Piston's terms; 413, 429 and 503 keep their status (and Retry-After);
// anything else is runbox's failure.
func fromNative(err error) error {
	var p *compat.Problem
	if !errors.As(err, &p) {
		return err
	}
	switch {
	case p.Status == http.StatusBadRequest || p.Status == http.StatusUnprocessableEntity:
		return &failure{http.StatusBadRequest, problemMessage(p), ""}
	case p.Status >= 400 && p.Status < 500 || p.Status == http.StatusServiceUnavailable:
		return &failure{p.Status, problemMessage(p), p.RetryAfter}
	}
	return err
}

// problemMessage is a native problem as one sentence, its field named as
// the Piston request names it.
func problemMessage(p *compat.Problem) string {
	if len(p.Errors) > 0 && p.Errors[0].Location != "" {
		return pistonField(p.Errors[0].Location) + ": " + p.Errors[0].Message
	}
	if p.Detail != "" {
		return p.Detail
	}
	return p.Title
}

// nativeFields are the native request's fields that a Piston field of
// another name became.
var nativeFields = map[string]string{
	"body.limits.wall_time_ms":            "run_timeout",
	"body.limits.cpu_time_ms":             "run_cpu_time",
	"body.limits.memory_bytes":            "run_memory_limit",
	"body.limits":                         "the run's limits",
	"body.compile_limits.wall_time_ms":    "compile_timeout",
	"body.compile_limits.cpu_time_ms":     "compile_cpu_time",
	"body.compile_limits.memory_bytes":    "compile_memory_limit",
	"body.compile_limits":                 "the compile's limits",
	"body.main":                           "files",
	"body.limits.output_bytes":            "the server's output limit",
	"body.compile_limits.output_bytes":    "the server's output limit",
	"body.limits.disk_bytes":              "files",
	"body.compile_limits.disk_bytes":      "files",
	"body":                                "the request",
	"message":                             "the request",
	"body.limits.processes":               "the run's limits",
	"body.compile_limits.processes":       "the compile's limits",
	"body.limits.file_size_bytes":         "the run's limits",
	"body.compile_limits.file_size_bytes": "the compile's limits",
}

// pistonField names a native request field as the Piston request does:
// body.files[0].name is files[0].name.
func pistonField(loc string) string {
	if f, ok := nativeFields[loc]; ok {
		return f
	}
	return strings.TrimPrefix(loc, "body.")
}

// fail answers err: a failure as it says, anything else as runbox's own
// failure (500), logged with the request id the client sees.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var f *failure
	if !errors.As(err, &f) {
		id := w.Header().Get("X-Request-Id")
		h.log.Error("piston request failed", "request_id", id, "path", r.URL.Path, "err", err)
		f = &failure{http.StatusInternalServerError, "runbox failed; request id " + id, ""}
	}
	if f.retryAfter != "" {
		w.Header().Set("Retry-After", f.retryAfter)
	}
	writeMessage(w, f.status, f.message)
}

type message struct {
	Message string `json:"message"`
}

func writeMessage(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, message{msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"message":"encoding the answer failed"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
