package opensandbox

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/runbox-dev/runbox/internal/compat"
)

// runRequest is OpenSandbox's RunRequest; a field left out is nil.
type runRequest struct {
	Command *[]string         `json:"command"`
	Time    *uint64           `json:"time"`
	Mem     *uint64           `json:"mem"`
	Fsize   *uint64           `json:"fsize"`
	Nofile  *uint64           `json:"nofile"`
	Env     map[string]string `json:"env"`
	Cwd     *string           `json:"cwd"`
}

// runResult is OpenSandbox's RunResult.
type runResult struct {
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	ExitCode *int   `json:"exit_code"`
	Signal   *int   `json:"signal"`
}

// limits are a run's native limits.
type limits struct {
	wallMS, cpuMS, memBytes, fileBytes, openFiles int64
}

// check reads the request's required command and its limits, with
// OpenSandbox's defaults; a value above the server's maximum is a 422
// naming the field.
func (q *runRequest) check(in *info) (limits, error) {
	if q.Command == nil {
		return limits{}, unprocessable("missing field `command`")
	}
	if len(*q.Command) == 0 || (*q.Command)[0] == "" {
		return limits{}, unprocessable("command: must name a program (an empty command runs nothing)")
	}
	for i, a := range *q.Command {
		if strings.ContainsRune(a, 0) {
			return limits{}, unprocessable("command[%d]: contains a NUL byte", i)
		}
	}
	mx := in.Maxima
	// value is the field's value in native units: its default (capped at
	// the maximum) when left out, else a 422 above the maximum.
	value := func(name string, v *uint64, def, unit, max int64) (int64, error) {
		if v == nil {
			return min(def*unit, max), nil
		}
		if *v > uint64(max/unit) {
			return 0, unprocessable("%s: %d is above this server's maximum %d", name, *v, max/unit)
		}
		return int64(*v) * unit, nil
	}
	var l limits
	var err error
	// time is whole seconds of CPU time, at least 1, as RLIMIT_CPU.
	t := q.Time
	if t != nil && *t <= uint64(mx.CPUTimeMS) {
		s := max(*t/1000, 1) * 1000
		t = &s
	}
	if l.cpuMS, err = value("time", t, defaultTimeMS/1000*1000, 1, mx.CPUTimeMS); err != nil {
		return l, err
	}
	l.wallMS = min(l.cpuMS*wallFactor, mx.WallTimeMS)
	if l.memBytes, err = value("mem", q.Mem, defaultMemKiB, 1024, mx.MemoryBytes); err != nil {
		return l, err
	}
	if l.fileBytes, err = value("fsize", q.Fsize, defaultFsize, 1024, mx.FileSizeBytes); err != nil {
		return l, err
	}
	// OpenSandbox's 0 makes any write fail; runbox's least is one byte.
	l.fileBytes = max(l.fileBytes, 1)
	if l.openFiles, err = value("nofile", q.Nofile, defaultNofile, 1, mx.OpenFiles); err != nil {
		return l, err
	}
	if l.openFiles < 1 {
		return l, unprocessable("nofile: must be at least 1 (runbox needs the standard streams)")
	}
	return l, nil
}

// cwd is the request's working directory in the box: "/" and none are
// the workspace.
func (q *runRequest) cwd() string {
	if q.Cwd == nil || *q.Cwd == "/" || *q.Cwd == "" {
		return ""
	}
	return *q.Cwd
}

// commandBody is the native POST /v1/sessions/{id}/commands body.
func (q *runRequest) commandBody(l limits) map[string]any {
	b := map[string]any{
		"command": *q.Command,
		"limits":  map[string]any{"wall_time_ms": l.wallMS, "cpu_time_ms": l.cpuMS, "open_files": l.openFiles},
	}
	if len(q.Env) > 0 {
		b["env"] = q.Env
	}
	if c := q.cwd(); c != "" {
		b["cwd"] = c
	}
	return b
}

// nativeResult is what the adapter reads of a native result.
type nativeResult struct {
	Status   string  `json:"status"`
	ExitCode int     `json:"exit_code"`
	Signal   *string `json:"signal"`
	Message  string  `json:"message"`
	Stdout   string  `json:"stdout"`
	Stderr   string  `json:"stderr"`
}

// answer is OpenSandbox's RunResult for a native result: a signal as its
// number and no exit code; a run killed by a limit as killed by SIGKILL
// (what runbox kills with) unless runbox names the signal.
func answer(ctx context.Context, hdr http.Header, r *nativeResult) (*runResult, error) {
	a := &runResult{Stdout: r.Stdout, Stderr: r.Stderr}
	sig := 0
	switch {
	case r.Status == "internal_error":
		return nil, failure(ctx, hdr, errInternal)
	case r.Signal != nil:
		sig = compat.SignalNumber(*r.Signal)
	case r.Status == "time_limit" || r.Status == "memory_limit" || r.Status == "output_limit":
		sig = 9
	}
	if sig > 0 {
		a.Signal = &sig
		return a, nil
	}
	code := r.ExitCode
	if code == 127 && a.Stderr == "" && strings.HasPrefix(r.Message, "cannot execute") {
		a.Stderr = r.Message
	}
	a.ExitCode = &code
	return a, nil
}

// run answers POST /run: a native session with the run's env, memory and
// file size, its one command, then the session's deletion.
func (h *handler) run(ctx context.Context, hdr http.Header, w http.ResponseWriter, r *http.Request) (any, error) {
	var q runRequest
	if err := h.decode(ctx, hdr, w, r, &q); err != nil {
		return nil, err
	}
	in, err := h.nativeInfo(ctx, hdr)
	if err != nil {
		return nil, err
	}
	l, err := q.check(in)
	if err != nil {
		return nil, err
	}
	id, err := h.newSession(ctx, hdr, map[string]any{
		"limits": map[string]any{"memory_bytes": l.memBytes, "file_size_bytes": l.fileBytes},
	}, false)
	if err != nil {
		return nil, err
	}
	defer func() {
		// The session is deleted whatever happened, the client's going
		// away included: hence a context that outlives the request's.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_, _ = h.n.Call(dctx, http.MethodDelete, "/v1/sessions/"+url.PathEscape(id), hdr, nil, nil)
	}()
	return h.command(ctx, hdr, id, &q, l)
}

// command runs one command in a native session.
func (h *handler) command(ctx context.Context, hdr http.Header, id string, q *runRequest, l limits) (any, error) {
	var res nativeResult
	if _, err := h.n.Call(ctx, http.MethodPost, "/v1/sessions/"+url.PathEscape(id)+"/commands", hdr, q.commandBody(l), &res); err != nil {
		return nil, nativeError(ctx, hdr, err, &textError{status: http.StatusNotFound, text: "Session not found"})
	}
	return answer(ctx, hdr, &res)
}
