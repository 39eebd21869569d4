// Package opensandbox serves OpenSandbox's HTTP API (the `isolate serve`
// of 9ba37f1: POST /run, sessions, GET /health) on runbox, so that an
// OpenSandbox client works by changing its base URL (runbox mounts it at
// /opensandbox). It owns the translation only: every request becomes
// calls of runbox's native sessions API, in process through
// compat.Native (a one-shot run is a native session made, used once and
// deleted). Validation, limits, admission and the memory budget are the
// native API's.
//
// What differs from OpenSandbox, and why:
//
//   - time is CPU time, as in OpenSandbox, rounded down to whole seconds
//     (at least 1) as its RLIMIT_CPU is; runbox also needs a wall-clock
//     bound, which OpenSandbox lacks (a sleep hangs it for ever): the wall
//     time is wallFactor times the CPU time, capped at the server's
//     maximum wall time.
//   - mem bounds the box's cgroup memory (RAM and tmpfs pages), where
//     OpenSandbox sets RLIMIT_AS (address space): a program that maps much
//     and touches little runs here where it fails there. Its default, 2
//     GiB, is capped at the server's maximum when the request leaves it out.
//   - fsize 0 means "any write fails" in OpenSandbox; runbox's smallest
//     file size limit is 1 byte, so 0 maps to 1: a write of one byte
//     succeeds, any larger write fails with SIGXFSZ/EFBIG.
//   - A value above the server's maximum is a 422 naming the field;
//     OpenSandbox has no bounds. Values it leaves out take its defaults
//     (time 5000, mem 2097152, fsize 10240, nofile 64), capped at the
//     server's maxima.
//   - In a session, mem and fsize cannot change per command: runbox
//     bounds a session's memory and file size for the whole session, at
//     the server's defaults (POST /sessions takes no limits). A session
//     run checks them against the maxima and otherwise ignores them.
//   - cwd "/" (OpenSandbox's default) is the box's workspace /box, where
//     a program may write: runbox's / is read-only. Other directories are
//     the box's own. In a session, a run's cwd applies only when it is
//     not "/" (OpenSandbox's rule, L711), so a client that always sends
//     "/" keeps the session's directory.
//   - GET /sessions and GET /sessions/:id show the session's variable
//     names, each value replaced by "***": OpenSandbox shows the values
//     to anyone who asks (secrets such as a GH_TOKEN). GET /sessions
//     lists the sessions made through this API only, not every native
//     session. Session ids are runbox's (128 random bits in hex), not
//     UUIDs.
//   - stderr carries the program's stderr only, none of OpenSandbox's
//     debug lines. A command that cannot be executed exits 127 with
//     runbox's reason as stderr (OpenSandbox: exit 1, "Child error:
//     exec: …"). A run killed by a limit reports the signal runbox kills
//     with (SIGKILL, 9) when the native result names none. Output is
//     bounded (the server's output limit) and needs no pipe-buffer dance.
//   - An empty command is a 422 (OpenSandbox's child panics); a NUL in
//     it is a 422 (OpenSandbox panics).
//   - Sessions end after runbox's idle timeout (the server's setting),
//     never during a running command.
package opensandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/runbox-dev/runbox/internal/compat"
)

const (
	// wallFactor is the wall time of a run per CPU second it may use:
	// room for a program that waits (I/O, sleep) without hanging for ever.
	wallFactor = 3
	// workspace is the box's writable working directory, OpenSandbox's /.
	workspace = "/box"
	// redacted replaces every environment value OpenSandbox would show.
	redacted = "***"
	// cleanupTimeout bounds the deletion of a one-shot run's session.
	cleanupTimeout = 10 * time.Second
	// maxTracked bounds the session ids remembered for GET /sessions.
	maxTracked = 4096
)

// OpenSandbox's defaults (RunRequest, L507-528).
const (
	defaultTimeMS = 5000
	defaultMemKiB = 2097152
	defaultFsize  = 10240
	defaultNofile = 64
)

// handler serves OpenSandbox's routes.
type handler struct {
	n *compat.Native

	info compat.Info[info]

	// mu guards the sessions made here.
	mu    sync.Mutex
	owned map[string]string // session id → its owner (API key name)
}

// New serves OpenSandbox's API on n (runbox's native API).
func New(n *compat.Native) http.Handler { return &handler{n: n, owned: map[string]string{}} }

// info is what the adapter reads of the native GET /v1/info.
type info struct {
	Maxima struct {
		WallTimeMS    int64 `json:"wall_time_ms"`
		CPUTimeMS     int64 `json:"cpu_time_ms"`
		MemoryBytes   int64 `json:"memory_bytes"`
		FileSizeBytes int64 `json:"file_size_bytes"`
		OpenFiles     int64 `json:"open_files"`
	} `json:"maxima"`
	MaxBodyBytes int64 `json:"max_body_bytes"`
}

// textError is an answer other than 2xx, in plain text as axum writes
// its rejections (an empty text: an empty body).
type textError struct {
	status     int
	text       string
	retryAfter string
}

func (e *textError) Error() string { return e.text }

func unprocessable(format string, a ...any) *textError {
	return &textError{status: http.StatusUnprocessableEntity,
		text: "Failed to deserialize the JSON body into the target type: " + fmt.Sprintf(format, a...)}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ans, err := h.route(w, r)
	var te *textError
	switch {
	case errors.As(err, &te):
		if te.retryAfter != "" {
			w.Header().Set("Retry-After", te.retryAfter)
		}
		if te.text != "" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		}
		w.WriteHeader(te.status)
		_, _ = io.WriteString(w, te.text)
	case err != nil:
		// The client went away: nobody reads an answer.
	case ans == nil:
		w.WriteHeader(http.StatusOK)
	default:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ans)
	}
}

// route answers one request: a value to encode as JSON, nil for an empty
// 200, or a *textError.
func (h *handler) route(w http.ResponseWriter, r *http.Request) (any, error) {
	ctx, hdr := r.Context(), compat.RequestHeader(w)
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	notAllowed := &textError{status: http.StatusMethodNotAllowed}
	switch {
	case r.URL.Path == "/health":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return nil, notAllowed
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "OK")
		return nil, errWritten
	case r.URL.Path == "/run":
		if r.Method != http.MethodPost {
			return nil, notAllowed
		}
		return h.run(ctx, hdr, w, r)
	case r.URL.Path == "/sessions":
		switch r.Method {
		case http.MethodPost:
			return h.createSession(ctx, hdr, w, r)
		case http.MethodGet:
			return h.listSessions(ctx, hdr)
		}
		return nil, notAllowed
	case len(parts) == 2 && parts[0] == "sessions" && parts[1] != "":
		switch r.Method {
		case http.MethodGet:
			return h.getSession(ctx, hdr, parts[1])
		case http.MethodDelete:
			return h.deleteSession(ctx, hdr, w, parts[1])
		}
		return nil, notAllowed
	case len(parts) == 3 && parts[0] == "sessions" && parts[1] != "":
		if r.Method != http.MethodPost {
			return nil, notAllowed
		}
		switch parts[2] {
		case "run":
			return h.sessionRun(ctx, hdr, w, r, parts[1])
		case "env":
			return h.setEnv(ctx, hdr, w, r, parts[1])
		case "cwd":
			return h.setCwd(ctx, hdr, w, r, parts[1])
		}
	}
	return nil, &textError{status: http.StatusNotFound}
}

// nativeInfo is the native GET /v1/info, read once.
func (h *handler) nativeInfo(ctx context.Context, hdr http.Header) (*info, error) {
	in, err := h.info.Get(ctx, h.n, hdr, func(in *info) bool { return in.MaxBodyBytes > 0 })
	if err != nil {
		return nil, failure(ctx, hdr, err)
	}
	return in, nil
}

// decode reads a JSON body into v as axum's Json extractor does: 415
// without a JSON content type, 400 for a syntax error, 422 for a
// mistyped field (a missing one is the caller's to check).
func (h *handler) decode(ctx context.Context, hdr http.Header, w http.ResponseWriter, r *http.Request, v any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !(mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return &textError{status: http.StatusUnsupportedMediaType, text: "Expected request with `Content-Type: application/json`"}
	}
	in, err := h.nativeInfo(ctx, hdr)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, in.MaxBodyBytes))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return &textError{status: http.StatusRequestEntityTooLarge, text: "Failed to buffer the request body: length limit exceeded"}
		}
		return err
	}
	if !json.Valid(body) {
		var se *json.SyntaxError
		msg := "EOF while parsing a value"
		if err := json.Unmarshal(body, new(any)); errors.As(err, &se) {
			msg = fmt.Sprintf("%s at offset %d", se.Error(), se.Offset)
		}
		return &textError{status: http.StatusBadRequest, text: "Failed to parse the request body as JSON: " + msg}
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := te.Field
			if field == "" {
				field = "."
			}
			return unprocessable("%s: invalid type: %s, expected %s", field, te.Value, te.Type)
		}
		return unprocessable("%v", err)
	}
	return nil
}

// failure is the answer to a native call that failed not for the
// request's content: a full server (429, 503) is to be retried; anything
// else is runbox's failure, a 500 in plain text as OpenSandbox's.
func failure(ctx context.Context, hdr http.Header, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var p *compat.Problem
	if errors.As(err, &p) {
		switch p.Status {
		case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusRequestEntityTooLarge:
			return &textError{status: p.Status, text: p.Detail, retryAfter: p.RetryAfter}
		}
	}
	msg := "runbox failed to run the request"
	if id := hdr.Get("X-Request-Id"); id != "" {
		msg += " (request id " + id + ")"
	}
	return &textError{status: http.StatusInternalServerError, text: msg}
}

// nativeError is the answer to a failed native call: the request's fault
// (400, 422) is a 422 naming the native field; a missing session is
// notFound.
func nativeError(ctx context.Context, hdr http.Header, err error, notFound *textError) error {
	var p *compat.Problem
	if ctx.Err() == nil && errors.As(err, &p) {
		switch p.Status {
		case http.StatusNotFound, http.StatusGone:
			if notFound != nil {
				return notFound
			}
		case http.StatusBadRequest, http.StatusUnprocessableEntity:
			loc := strings.TrimPrefix(strings.TrimPrefix(firstLocation(p), "body"), ".")
			if loc == "" {
				return unprocessable("%s", p.Error())
			}
			if f, ok := limitFields[strings.TrimPrefix(loc, "limits.")]; ok {
				loc = f
			}
			return unprocessable("%s: %s", loc, p.Errors[0].Message)
		}
	}
	return failure(ctx, hdr, err)
}

// limitFields name OpenSandbox's field for a native limit.
var limitFields = map[string]string{
	"wall_time_ms": "time", "cpu_time_ms": "time", "memory_bytes": "mem", "file_size_bytes": "fsize", "open_files": "nofile",
}

func firstLocation(p *compat.Problem) string {
	if len(p.Errors) == 0 {
		return ""
	}
	return p.Errors[0].Location
}
