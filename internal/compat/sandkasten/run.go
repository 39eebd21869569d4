package sandkasten

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/runbox-dev/runbox/internal/compat"
)

// limitsOpt is Sandkasten's LimitsOpt: an omitted field is nil.
type limitsOpt struct {
	Cpus            *uint64 `json:"cpus"`
	Time            *uint64 `json:"time"`
	Memory          *uint64 `json:"memory"`
	Tmpfs           *uint64 `json:"tmpfs"`
	Filesize        *uint64 `json:"filesize"`
	FileDescriptors *uint64 `json:"file_descriptors"`
	Processes       *uint64 `json:"processes"`
	StdoutMaxSize   *uint64 `json:"stdout_max_size"`
	StderrMaxSize   *uint64 `json:"stderr_max_size"`
	Network         *bool   `json:"network"`
}

// limits is Sandkasten's Limits: the limits that applied.
type limits struct {
	Cpus            uint64 `json:"cpus"`
	Time            uint64 `json:"time"`
	Memory          uint64 `json:"memory"`
	Tmpfs           uint64 `json:"tmpfs"`
	Filesize        uint64 `json:"filesize"`
	FileDescriptors uint64 `json:"file_descriptors"`
	Processes       uint64 `json:"processes"`
	StdoutMaxSize   uint64 `json:"stdout_max_size"`
	StderrMaxSize   uint64 `json:"stderr_max_size"`
	Network         bool   `json:"network"`
}

// limitExceeded is Sandkasten's LimitExceeded.
type limitExceeded struct {
	Name     string `json:"name"`
	MaxValue uint64 `json:"max_value"`
}

// check is poem's validator: these fields are at least 1.
func (o *limitsOpt) check(field string) error {
	for _, f := range []struct {
		name string
		v    *uint64
	}{{"cpus", o.Cpus}, {"time", o.Time}, {"memory", o.Memory}, {"filesize", o.Filesize}, {"file_descriptors", o.FileDescriptors}, {"processes", o.Processes}} {
		if f.v != nil && *f.v < 1 {
			return payloadError("field `%s.%s` verification failed. minimum(1, exclusive: false)", field, f.name)
		}
	}
	return nil
}

const mb = 1 << 20

// toLimits is native limits in Sandkasten's units.
func toLimits(l nativeLimits) limits {
	return limits{Cpus: 1, Time: uint64(max(l.WallTimeMS/1000, 1)), Memory: uint64(l.MemoryBytes / mb), Tmpfs: uint64(l.DiskBytes / mb),
		Filesize: uint64(l.FileSizeBytes / mb), FileDescriptors: uint64(l.OpenFiles), Processes: uint64(l.Processes),
		StdoutMaxSize: uint64(l.OutputBytes), StderrMaxSize: uint64(l.OutputBytes)}
}

// maxLimits are the native maxima in Sandkasten's units.
func maxLimits(in *info) limits { return toLimits(in.Maxima) }

// resolve checks o against the native maxima (Sandkasten's
// *_limits_exceeded details, every field above its maximum) and returns
// the limits that apply (an omitted one: runbox's default) and the native
// limits to send (an omitted one: left to runbox).
func (o *limitsOpt) resolve(in *info) (limits, map[string]int64, []limitExceeded) {
	mx, def := maxLimits(in), toLimits(in.Defaults)
	var over []limitExceeded
	out := map[string]int64{}
	eff := def
	num := func(name string, v *uint64, limit uint64, set *uint64, native string, unit int64, least int64) {
		if v == nil {
			return
		}
		if *v > limit {
			over = append(over, limitExceeded{Name: name, MaxValue: limit})
			return
		}
		*set = *v
		if native != "" {
			out[native] = max(int64(*v)*unit, least)
		}
	}
	num("cpus", o.Cpus, mx.Cpus, &eff.Cpus, "", 0, 0)
	num("time", o.Time, mx.Time, &eff.Time, "wall_time_ms", 1000, 1)
	if v, ok := out["wall_time_ms"]; ok {
		// time is wall time; the CPU time is no larger.
		out["cpu_time_ms"] = min(v, in.Maxima.CPUTimeMS)
	}
	num("memory", o.Memory, mx.Memory, &eff.Memory, "memory_bytes", mb, 1)
	num("tmpfs", o.Tmpfs, mx.Tmpfs, &eff.Tmpfs, "disk_bytes", mb, 64<<10)
	num("filesize", o.Filesize, mx.Filesize, &eff.Filesize, "file_size_bytes", mb, 1)
	num("file_descriptors", o.FileDescriptors, mx.FileDescriptors, &eff.FileDescriptors, "open_files", 1, 1)
	num("processes", o.Processes, mx.Processes, &eff.Processes, "processes", 1, 1)
	num("stdout_max_size", o.StdoutMaxSize, mx.StdoutMaxSize, &eff.StdoutMaxSize, "", 0, 0)
	num("stderr_max_size", o.StderrMaxSize, mx.StderrMaxSize, &eff.StderrMaxSize, "", 0, 0)
	// The native output limit ends the run one byte past it, where
	// Sandkasten only stops reading: it is raised above runbox's default
	// only for a larger size asked, and the streams are cut here.
	if n := int64(max(eff.StdoutMaxSize, eff.StderrMaxSize)); n > in.Defaults.OutputBytes {
		out["output_bytes"] = n
	}
	if o.Network != nil && *o.Network {
		// max_value is the bool as Sandkasten's u64: false, 0.
		over = append(over, limitExceeded{Name: "network", MaxValue: 0})
	}
	return eff, out, over
}

// resourceUsage is Sandkasten's ResourceUsage.
type resourceUsage struct {
	Time   uint64 `json:"time"`
	Memory uint64 `json:"memory"`
}

// runResult is Sandkasten's RunResult.
type runResult struct {
	Status        int           `json:"status"`
	Stdout        string        `json:"stdout"`
	Stderr        string        `json:"stderr"`
	ResourceUsage resourceUsage `json:"resource_usage"`
	Limits        limits        `json:"limits"`
}

// nativeResult is what the adapter reads of a native result.
type nativeResult struct {
	Status       string  `json:"status"`
	ExitCode     int     `json:"exit_code"`
	Signal       *string `json:"signal"`
	Message      string  `json:"message"`
	Stdout       string  `json:"stdout"`
	Stderr       string  `json:"stderr"`
	StdoutBase64 string  `json:"stdout_base64"`
	StderrBase64 string  `json:"stderr_base64"`
	WallTimeMS   int64   `json:"wall_time_ms"`
	MemoryBytes  int64   `json:"memory_bytes"`
}

// result is Sandkasten's RunResult of a native result under l.
func result(r *nativeResult, l limits) runResult {
	status := r.ExitCode
	switch {
	case r.Status == "time_limit" || r.Status == "memory_limit" || r.Status == "output_limit":
		status = 128 + 9
	case r.Signal != nil:
		status = 128 + compat.SignalNumber(*r.Signal)
	}
	stderr := text(r.Stderr, r.StderrBase64, l.StderrMaxSize)
	if status == 127 && stderr == "" && strings.HasPrefix(r.Message, "cannot execute") {
		stderr = r.Message
	}
	return runResult{Status: status, Stdout: text(r.Stdout, r.StdoutBase64, l.StdoutMaxSize), Stderr: stderr,
		ResourceUsage: resourceUsage{Time: uint64(max(r.WallTimeMS, 0)), Memory: uint64(max(r.MemoryBytes, 0) / 1024)},
		Limits:        l}
}

// text is a stream, lossily UTF-8 as Sandkasten reads it, cut to max
// bytes.
func text(s, b64 string, max uint64) string {
	if b64 != "" {
		if raw, err := base64.StdEncoding.DecodeString(b64); err == nil {
			s = string(raw)
		}
	}
	if uint64(len(s)) > max {
		s = s[:max]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// runBody is the native POST /v1/run body for b run as q.
func runBody(b *buildRequest, q *runRequest, compileLimits, runLimits map[string]int64) map[string]any {
	files := []map[string]string{{"name": b.mainName, "content": *b.MainFile.Content}}
	for _, f := range slices.Concat(b.Files, q.Files) {
		files = append(files, map[string]string{"name": f.Name, "content": f.Content})
	}
	env := map[string]string{}
	for _, v := range slices.Concat(b.EnvVars, q.EnvVars) {
		env[v.Name] = v.Value
	}
	body := map[string]any{"language": *b.Environment, "files": files, "main": b.mainName}
	if len(env) > 0 {
		body["env"] = env
	}
	if q.Stdin != nil && *q.Stdin != "" {
		body["stdin"] = *q.Stdin
	}
	if len(q.Args) > 0 {
		body["args"] = q.Args
	}
	if len(compileLimits) > 0 {
		body["compile_limits"] = compileLimits
	}
	if len(runLimits) > 0 {
		body["limits"] = runLimits
	}
	return body
}

// nativeAnswer is what the adapter reads of a native POST /v1/run answer.
type nativeAnswer struct {
	Cached  bool          `json:"cached"`
	Compile *nativeResult `json:"compile"`
	Run     *nativeResult `json:"run"`
}

// nativeError is the answer to a failed native run: the request's fault
// (400, 422) is Sandkasten's error for the field, or poem's 400.
func nativeError(ctx context.Context, hdr http.Header, err error) error {
	var p *compat.Problem
	if ctx.Err() != nil || !errors.As(err, &p) || p.Status != http.StatusBadRequest && p.Status != http.StatusUnprocessableEntity {
		return failure(ctx, hdr, err)
	}
	loc, msg := "", p.Detail
	if len(p.Errors) > 0 {
		loc, msg = strings.TrimPrefix(p.Errors[0].Location, "body."), p.Errors[0].Message
	}
	switch {
	case strings.HasPrefix(loc, "files"):
		return errInvalidFileNames
	case strings.HasPrefix(loc, "env"):
		return errInvalidEnvVars
	case strings.HasPrefix(loc, "compile_limits"):
		loc = "compile_limits" + strings.TrimPrefix(loc, "compile_limits")
	case strings.HasPrefix(loc, "limits"):
		loc = "run_limits" + strings.TrimPrefix(loc, "limits")
	}
	if loc == "" {
		return payloadError("%s", msg)
	}
	return payloadError("field `%s`: %s", loc, msg)
}

// errInternal is a native answer that says runbox failed.
var errInternal = errors.New("the native result is an internal error or has no run")
