// Package sandkasten serves Sandkasten's API (Defelo/sandkasten: POST
// /run, POST /programs, POST /programs/{id}/run, GET /environments, GET
// /config) on runbox, so that a Sandkasten client works by changing its
// base URL (runbox mounts it at /sandkasten). It owns the translation
// only: a build and a run become one native POST /v1/run of the
// environment, called in process through compat.Native. Validation,
// limits, admission, compilation and the memory budget are the native
// API's.
//
// What differs from Sandkasten, and why:
//
//   - A program is not kept compiled here. Its id is a content hash (the
//     first 128 bits of SHA-256 over the environment, the files and the
//     build's variables, written as a UUID, the type Sandkasten's client
//     parses); the adapter keeps the build request, bounded in count and
//     bytes (maxPrograms, maxProgramBytes) and dropped programTTL after
//     its last use, and each run sends it again. runbox caches compiled
//     output itself (its compile cache, keyed on the same sources), so a
//     second run does not compile again while the cache holds it. cached
//     is true when the adapter knew the program or the native compile
//     came from that cache.
//   - runbox has no compile-only call: POST /programs of a compiled
//     environment compiles through a native run whose run step is cut to
//     1 ms, its result thrown away. An interpreted environment is not
//     run at all: compile_result is absent, as in Sandkasten. A program
//     the adapter knows is not compiled again: cached true, no
//     compile_result.
//   - Limits: an omitted limit takes runbox's default (for a compile, the
//     environment's compile limits), not the maximum as in Sandkasten:
//     runbox's operator sets defaults apart from maxima. The maxima are
//     the native API's (GET /config shows them); cpus is at most 1 (runbox
//     has no CPU-count limit) and network false. time is wall time; the
//     CPU time is bounded by the same value. tmpfs is the size of /box
//     and of /tmp (runbox's disk limit), at least 64 KiB. stdout_max_size
//     and stderr_max_size cut the streams here, as Sandkasten stops
//     reading; runbox's output limit, which ends a run one byte past it
//     (status 137), stays at its default unless a larger size is asked.
//     runbox's own minima hold (4 MB memory, 8 file descriptors): below
//     them is a 400.
//   - status is the exit code; a program killed by a signal is 128 + the
//     signal, by a limit 137 (SIGKILL). resource_usage.time is the wall
//     time in ms, memory the peak in KB, as runbox measures them.
//   - Build variables are also set for the run, and run files are also
//     in the workspace while compiling (a run file with the compiled
//     extension is compiled too): runbox's run has one environment and
//     one workspace. A run file named as a build file is
//     invalid_file_names.
//   - A body that does not parse is a 400 in plain text ("parse request
//     payload error: …"), as poem-openapi answers. A full server is a 429
//     with Retry-After. GET /environments/{name}/resource_usage,
//     /openapi.json, /docs, /redoc and /metrics are not served.
package sandkasten

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/runbox-dev/runbox/internal/compat"
)

const (
	// programTTL is Sandkasten's program_ttl: a program is forgotten this
	// long after its last use.
	programTTL = 600 * time.Second
	// maxPrograms and maxProgramBytes bound the programs kept.
	maxPrograms     = 1024
	maxProgramBytes = 64 << 20
)

// handler serves Sandkasten's routes.
type handler struct {
	n        *compat.Native
	programs *cache
	info     compat.Info[info]
}

// New serves Sandkasten's API on n (runbox's native API).
func New(n *compat.Native) http.Handler {
	return &handler{n: n, programs: newCache(maxPrograms, maxProgramBytes, programTTL, time.Now)}
}

// nativeLimits are native limits (api.LimitsOut).
type nativeLimits struct {
	WallTimeMS    int64 `json:"wall_time_ms"`
	CPUTimeMS     int64 `json:"cpu_time_ms"`
	MemoryBytes   int64 `json:"memory_bytes"`
	Processes     int64 `json:"processes"`
	FileSizeBytes int64 `json:"file_size_bytes"`
	OpenFiles     int64 `json:"open_files"`
	OutputBytes   int64 `json:"output_bytes"`
	DiskBytes     int64 `json:"disk_bytes"`
}

// info is what the adapter reads of the native GET /v1/info.
type info struct {
	Defaults     nativeLimits `json:"defaults"`
	Maxima       nativeLimits `json:"maxima"`
	MaxBoxes     int          `json:"max_boxes"`
	MaxBodyBytes int64        `json:"max_body_bytes"`
}

// apiError is an answer other than 2xx: Sandkasten's {error, details},
// or plain text (poem's own rejections) when code is "".
type apiError struct {
	status     int
	code       string
	details    any
	text       string
	retryAfter string
}

func (e *apiError) Error() string {
	if e.code != "" {
		return e.code
	}
	return e.text
}

func payloadError(format string, a ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, text: "parse request payload error: " + fmt.Sprintf(format, a...)}
}

var (
	errEnvironmentNotFound = &apiError{status: http.StatusNotFound, code: "environment_not_found"}
	errProgramNotFound     = &apiError{status: http.StatusNotFound, code: "program_not_found"}
	errInvalidFileNames    = &apiError{status: http.StatusBadRequest, code: "invalid_file_names"}
	errInvalidEnvVars      = &apiError{status: http.StatusBadRequest, code: "invalid_env_vars"}
)

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status, ans, err := h.route(w, r)
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		if ae.retryAfter != "" {
			w.Header().Set("Retry-After", ae.retryAfter)
		}
		if ae.code == "" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(ae.status)
			_, _ = io.WriteString(w, ae.text)
			return
		}
		body := map[string]any{"error": ae.code}
		if ae.details != nil {
			body["details"] = ae.details
		}
		writeJSON(w, ae.status, body)
	case err != nil:
		// The client went away: nobody reads an answer.
	default:
		writeJSON(w, status, ans)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (h *handler) route(w http.ResponseWriter, r *http.Request) (int, any, error) {
	ctx, hdr := r.Context(), compat.RequestHeader(w)
	path := r.URL.Path
	method := http.MethodPost
	if path == "/environments" || path == "/config" {
		method = http.MethodGet
	}
	id, isProgramRun := strings.CutPrefix(path, "/programs/")
	if isProgramRun {
		id, isProgramRun = strings.CutSuffix(id, "/run")
		isProgramRun = isProgramRun && id != "" && !strings.Contains(id, "/")
	}
	if path != "/run" && path != "/programs" && path != "/environments" && path != "/config" && !isProgramRun {
		return 0, nil, &apiError{status: http.StatusNotFound, text: "not found"}
	}
	if r.Method != method {
		return 0, nil, &apiError{status: http.StatusMethodNotAllowed, text: "method not allowed"}
	}
	switch {
	case path == "/environments":
		ans, err := h.environments(ctx, hdr)
		return http.StatusOK, ans, err
	case path == "/config":
		ans, err := h.config(ctx, hdr)
		return http.StatusOK, ans, err
	case path == "/run":
		ans, err := h.buildRun(ctx, hdr, w, r)
		return http.StatusOK, ans, err
	case path == "/programs":
		ans, err := h.build(ctx, hdr, w, r)
		return http.StatusCreated, ans, err
	}
	ans, err := h.runProgram(ctx, hdr, w, r, id)
	return http.StatusOK, ans, err
}

// nativeInfo is the native GET /v1/info, read once.
func (h *handler) nativeInfo(ctx context.Context, hdr http.Header) (*info, error) {
	in, err := h.info.Get(ctx, h.n, hdr, func(in *info) bool { return in.MaxBodyBytes > 0 })
	if err != nil {
		return nil, failure(ctx, hdr, err)
	}
	return in, nil
}

// decode reads a JSON body into v; what does not parse is poem's 400 in
// plain text.
func (h *handler) decode(ctx context.Context, hdr http.Header, w http.ResponseWriter, r *http.Request, v any) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return &apiError{status: http.StatusUnsupportedMediaType,
			text: fmt.Sprintf("the `Content-type` requested by the client is not supported: %s", r.Header.Get("Content-Type"))}
	}
	in, err := h.nativeInfo(ctx, hdr)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, in.MaxBodyBytes))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return &apiError{status: http.StatusRequestEntityTooLarge, text: fmt.Sprintf("the body is larger than %d bytes", in.MaxBodyBytes)}
		}
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return payloadError("field `%s`: expected %s, found %s", te.Field, te.Type, te.Value)
		case errors.As(err, &te):
			return payloadError("expected an object, found %s", te.Value)
		case errors.As(err, &se):
			return payloadError("invalid JSON at offset %d: %v", se.Offset, se)
		}
		return payloadError("invalid JSON: %v", err)
	}
	return nil
}

// environment is what the adapter reads of a native environment.
type environment struct {
	Name      string   `json:"name"`
	Version   string   `json:"version"`
	Aliases   []string `json:"aliases"`
	Compiled  bool     `json:"compiled"`
	Available bool     `json:"available"`
	Source    string   `json:"source"`
}

// nativeEnvironments are the available native environments by name. They
// are asked each time: environments are data the operator may reload.
func (h *handler) nativeEnvironments(ctx context.Context, hdr http.Header) (map[string]environment, error) {
	var list []environment
	if _, err := h.n.Call(ctx, http.MethodGet, "/v1/environments", hdr, nil, &list); err != nil {
		return nil, failure(ctx, hdr, err)
	}
	out := map[string]environment{}
	for _, e := range list {
		if e.Available {
			out[e.Name] = e
		}
	}
	return out, nil
}

// environments answers GET /environments.
func (h *handler) environments(ctx context.Context, hdr http.Header) (any, error) {
	envs, err := h.nativeEnvironments(ctx, hdr)
	if err != nil {
		return nil, err
	}
	type envOut struct {
		Name                string         `json:"name"`
		Version             string         `json:"version"`
		DefaultMainFileName string         `json:"default_main_file_name"`
		Meta                map[string]any `json:"meta"`
	}
	out := map[string]envOut{}
	for name, e := range envs {
		out[name] = envOut{Name: e.Name, Version: e.Version, DefaultMainFileName: e.Source,
			Meta: map[string]any{"aliases": e.Aliases, "compiled": e.Compiled}}
	}
	return out, nil
}

// config answers GET /config: the native maxima as Sandkasten's limits.
func (h *handler) config(ctx context.Context, hdr http.Header) (any, error) {
	in, err := h.nativeInfo(ctx, hdr)
	if err != nil {
		return nil, err
	}
	mx := maxLimits(in)
	return map[string]any{
		"program_ttl":              int64(programTTL / time.Second),
		"max_concurrent_jobs":      in.MaxBoxes,
		"compile_limits":           mx,
		"run_limits":               mx,
		"base_resource_usage_runs": 0,
	}, nil
}

// failure is the answer to a native call that failed not for the
// request's content: a full server (429, 503) is to be retried; anything
// else is runbox's failure.
func failure(ctx context.Context, hdr http.Header, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var p *compat.Problem
	if errors.As(err, &p) {
		switch p.Status {
		case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusRequestEntityTooLarge:
			return &apiError{status: p.Status, text: p.Detail, retryAfter: p.RetryAfter}
		}
	}
	msg := "runbox failed to run the request"
	if id := hdr.Get("X-Request-Id"); id != "" {
		msg += " (request id " + id + ")"
	}
	return &apiError{status: http.StatusInternalServerError, text: msg}
}
