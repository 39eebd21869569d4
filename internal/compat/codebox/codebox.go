// Package codebox serves Codebox's API (andredias/codebox: POST /execute,
// GET /languages) on runbox, so that a Codebox client works by changing
// its base URL (runbox mounts it at /codebox). It owns the translation
// only: a request becomes one native session holding the sources, one
// native command per Codebox command, run in order, and the session's
// deletion, all called in process through compat.Native. Validation,
// limits, admission and the memory budget are the native API's.
//
// What differs from Codebox, and why:
//
//   - Commands run in runbox's image, not Codebox's: a first word that
//     names a path of Codebox's image is replaced through the aliases
//     (DefaultAliases: /venv/bin/python runs python3, …); pytest runs
//     only if the server has it. The working directory (and HOME) is
//     /box, not /sandbox.
//   - A command's timeout is its wall time in runbox; the default, when a
//     command gives none, is Codebox's 0.2 s, to be faithful (runbox's own
//     default is longer). A timeout of null takes the server's default,
//     where Codebox waits for ever. The other limits are the server's
//     defaults for a session (memory, processes, disk, output), not
//     Codebox's 64 MB and 12 processes.
//   - A command line that shlex cannot split (an unclosed quote, a final
//     backslash), or an empty one, is a 422; Codebox fails with a 500.
//   - A command that cannot be executed exits 127 with runbox's reason as
//     its stderr; Codebox's NsJail fails otherwise. Output that is not
//     UTF-8 is kept with U+FFFD where Codebox fails the command.
//   - POST /execute_insecure is served as /execute: runbox always
//     sandboxes. /docs and /openapi.json are not served.
//   - GET /languages lists what runbox has: python, rust and bash from its
//     environments (those available), sqlite3 when the command exists in
//     a box; the others are left out.
//   - Bounds Codebox has not: at most maxCommands commands, the native
//     max_files sources and max_body_bytes of body; a full server answers
//     429 with Retry-After.
package codebox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/runbox-dev/runbox/internal/compat"
)

// DefaultAliases map a command's first word that names a path of
// Codebox's image to the command runbox runs instead. New copies the map
// it is given; this one is not changed.
var DefaultAliases = map[string]string{
	"/venv/bin/python":           "python3",
	"/venv/bin/python3":          "python3",
	"python":                     "python3", // on PATH in Codebox's image, not in runbox's
	"/venv/bin/pytest":           "pytest",  // only where the server has pytest
	"/usr/local/cargo/bin/rustc": "rustc",
	"/usr/local/cargo/bin/cargo": "cargo",
}

const (
	// defaultTimeout is Codebox's TIMEOUT, a command's time in seconds
	// when it gives none.
	defaultTimeout = 0.2
	// maxCommands bounds the commands of one request.
	maxCommands = 64
	// workspace is where the sources are, and commands run (Codebox's
	// /sandbox).
	workspace = "/box"
	// cleanupTimeout bounds the deletion of a request's session.
	cleanupTimeout = 10 * time.Second
)

// handler serves Codebox's routes.
type handler struct {
	n       *compat.Native
	aliases map[string]string

	info compat.Info[info]

	// mu guards sqlite3's version, read once from a box.
	mu      sync.Mutex
	sqlite3 *string // sqlite3's version, once asked and answered ("" : none)
}

// New serves Codebox's API on n (runbox's native API). aliases maps a
// command's first word to what runs instead; nil means DefaultAliases.
func New(n *compat.Native, aliases map[string]string) http.Handler {
	if aliases == nil {
		aliases = DefaultAliases
	}
	h := &handler{n: n, aliases: make(map[string]string, len(aliases))}
	for k, v := range aliases {
		h.aliases[k] = v
	}
	return h
}

// info is what the adapter reads of the native GET /v1/info.
type info struct {
	Defaults struct {
		WallTimeMS int64 `json:"wall_time_ms"`
	} `json:"defaults"`
	MaxBodyBytes int64 `json:"max_body_bytes"`
}

// commandAnswer is one command's entry in the answer, as Codebox's
// Response.
type commandAnswer struct {
	Stdout      string  `json:"stdout"`
	Stderr      string  `json:"stderr"`
	ExitCode    int     `json:"exit_code"`
	ElapsedTime float64 `json:"elapsed_time"`
}

// httpError is an answer other than 200, with FastAPI's body: {"detail":
// a message, or the list of validation errors}.
type httpError struct {
	status     int
	detail     any
	retryAfter string
}

func (e *httpError) Error() string { return fmt.Sprint(e.detail) }

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var methods string
	switch r.URL.Path {
	case "/execute", "/execute_insecure":
		methods = http.MethodPost
	case "/languages":
		methods = http.MethodGet
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"detail": "Not Found"})
		return
	}
	if r.Method != methods && !(methods == http.MethodGet && r.Method == http.MethodHead) {
		w.Header().Set("Allow", methods)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"detail": "Method Not Allowed"})
		return
	}
	var (
		ans any
		err error
	)
	if methods == http.MethodGet {
		ans, err = h.languages(r.Context(), compat.RequestHeader(w))
	} else {
		ans, err = h.execute(w, r)
	}
	var he *httpError
	switch {
	case errors.As(err, &he):
		if he.retryAfter != "" {
			w.Header().Set("Retry-After", he.retryAfter)
		}
		writeJSON(w, he.status, map[string]any{"detail": he.detail})
	case err != nil:
		// The client went away: nobody reads an answer.
	default:
		writeJSON(w, http.StatusOK, ans)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// nativeInfo is the native GET /v1/info, read once.
func (h *handler) nativeInfo(ctx context.Context, hdr http.Header) (*info, error) {
	in, err := h.info.Get(ctx, h.n, hdr, func(in *info) bool { return in.MaxBodyBytes > 0 })
	if err != nil {
		return nil, failure(ctx, hdr, err)
	}
	return in, nil
}

// execute answers POST /execute.
func (h *handler) execute(w http.ResponseWriter, r *http.Request) ([]commandAnswer, error) {
	ctx, hdr := r.Context(), compat.RequestHeader(w)
	in, err := h.nativeInfo(ctx, hdr)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, in.MaxBodyBytes))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, &httpError{status: http.StatusRequestEntityTooLarge,
				detail: fmt.Sprintf("the body is larger than %d bytes (the server's max_body_bytes)", in.MaxBodyBytes)}
		}
		return nil, err
	}
	p, err := parseProject(r.Header.Get("Content-Type"), body)
	if err != nil {
		return nil, err
	}
	if bad := p.badSources(); len(bad) > 0 {
		return bad, nil // as Codebox: one answer per bad path, nothing run
	}
	cmds, err := p.argvs(h.aliases)
	if err != nil {
		return nil, err
	}
	answers := []commandAnswer{}
	if len(cmds) == 0 {
		return answers, nil
	}

	var s struct {
		ID string `json:"id"`
	}
	if _, err := h.n.Call(ctx, http.MethodPost, "/v1/sessions", hdr, p.sessionBody(), &s); err != nil {
		return nil, p.nativeError(ctx, hdr, err, -1)
	}
	defer func() {
		// The session is deleted whatever happened, the client's going
		// away included: hence a context that outlives the request's.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_, _ = h.n.Call(dctx, http.MethodDelete, "/v1/sessions/"+s.ID, hdr, nil, nil)
	}()
	for i, c := range cmds {
		if c.nul {
			// What Codebox's subprocess.run answers.
			answers = append(answers, commandAnswer{Stderr: "embedded null byte", ExitCode: -1})
			continue
		}
		var res runResult
		_, err := h.n.Call(ctx, http.MethodPost, "/v1/sessions/"+s.ID+"/commands", hdr, c.body(), &res)
		if err != nil {
			if e := p.nativeError(ctx, hdr, err, i); !isFailure(e) {
				return nil, e
			}
			// runbox failed to run this command: as a command that raised
			// in Codebox, its answer says so, and the next ones run.
			answers = append(answers, commandAnswer{Stderr: failedMessage(hdr), ExitCode: -1})
			continue
		}
		answers = append(answers, response(&res, c.timeoutText(in)))
	}
	return answers, nil
}

// runResult is what the adapter reads of a native result (result.Result).
type runResult struct {
	Status     string  `json:"status"`
	ExitCode   int     `json:"exit_code"`
	Signal     *string `json:"signal"`
	Message    string  `json:"message"`
	Stdout     string  `json:"stdout"`
	Stderr     string  `json:"stderr"`
	WallTimeMS int64   `json:"wall_time_ms"`
}

// response is Codebox's answer for a command's native result: a timeout
// exits -1 with its partial output, and "Timeout Error. Exceeded {t}s"
// as stderr when the command wrote none; a program killed by a signal
// exits 128 + the signal, as NsJail reports it (a memory kill: 137).
func response(r *runResult, timeout string) commandAnswer {
	a := commandAnswer{Stdout: r.Stdout, Stderr: r.Stderr, ExitCode: r.ExitCode, ElapsedTime: float64(r.WallTimeMS) / 1000}
	switch {
	case r.Status == "time_limit":
		a.ExitCode = -1
		if a.Stderr == "" {
			a.Stderr = "Timeout Error. Exceeded " + timeout + "s"
		}
	case r.Status == "memory_limit":
		a.ExitCode = 128 + 9
	case r.Status == "internal_error":
		a.ExitCode = -1
	case r.Signal != nil:
		a.ExitCode = 128 + compat.SignalNumber(*r.Signal)
	case r.ExitCode == 127 && a.Stderr == "" && strings.HasPrefix(r.Message, "cannot execute"):
		a.Stderr = r.Message
	}
	return a
}

// failure is the answer to a native call that failed not for the
// request's content: a full server (429, 503) is to be retried; anything
// else is runbox's failure (500).
func failure(ctx context.Context, hdr http.Header, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var p *compat.Problem
	if errors.As(err, &p) {
		switch p.Status {
		case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusRequestEntityTooLarge:
			return &httpError{status: p.Status, detail: p.Detail, retryAfter: p.RetryAfter}
		}
	}
	return &httpError{status: http.StatusInternalServerError, detail: failedMessage(hdr)}
}

func failedMessage(hdr http.Header) string {
	msg := "runbox failed to run the request"
	if id := hdr.Get("X-Request-Id"); id != "" {
		msg += " (request id " + id + ")"
	}
	return msg
}

func isFailure(err error) bool {
	var he *httpError
	return errors.As(err, &he) && he.status == http.StatusInternalServerError
}
