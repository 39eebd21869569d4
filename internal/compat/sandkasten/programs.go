package sandkasten

import (
	"context"
	"net/http"
	"regexp"
)

// buildResult is Sandkasten's BuildResult (POST /programs).
type buildResult struct {
	ProgramID     string     `json:"program_id"`
	TTL           int64      `json:"ttl"`
	Cached        bool       `json:"cached"`
	CompileResult *runResult `json:"compile_result,omitempty"`
}

// buildRunResult is Sandkasten's BuildRunResult (POST /run).
type buildRunResult struct {
	ProgramID string     `json:"program_id"`
	TTL       int64      `json:"ttl"`
	Cached    bool       `json:"cached"`
	Build     *runResult `json:"build,omitempty"`
	Run       runResult  `json:"run"`
}

// uuidRE is a program id as poem parses a Uuid path parameter.
var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)

// prepared is a checked build: the program, its compile limits (as they
// apply, and as sent to runbox) and its environment.
type prepared struct {
	b       *buildRequest
	env     environment
	applied limits
	native  map[string]int64
}

// prepare checks a build: the schema, the environment, the names, the
// compile limits.
func (h *handler) prepare(ctx context.Context, hdr http.Header, b *buildRequest, in *info) (*prepared, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	envs, err := h.nativeEnvironments(ctx, hdr)
	if err != nil {
		return nil, err
	}
	e, ok := envs[*b.Environment]
	if !ok {
		return nil, errEnvironmentNotFound
	}
	if err := b.prepare(e); err != nil {
		return nil, err
	}
	applied, native, over := b.CompileLimits.resolve(in)
	if len(over) > 0 {
		return nil, &apiError{status: http.StatusBadRequest, code: "compile_limits_exceeded", details: over}
	}
	return &prepared{b: b, env: e, applied: applied, native: native}, nil
}

// checkRun checks a run of b: the schema, the names, the run limits.
func checkRun(q *runRequest, b *buildRequest, in *info) (limits, map[string]int64, error) {
	if err := q.check(); err != nil {
		return limits{}, nil, err
	}
	names := []string{b.mainName}
	for _, f := range b.Files {
		names = append(names, f.Name)
	}
	for _, f := range q.Files {
		names = append(names, f.Name)
	}
	if !uniqueNames(names...) {
		return limits{}, nil, errInvalidFileNames
	}
	applied, native, over := q.RunLimits.resolve(in)
	if len(over) > 0 {
		return limits{}, nil, &apiError{status: http.StatusBadRequest, code: "run_limits_exceeded", details: over}
	}
	return applied, native, nil
}

// execute runs b as q natively: the compile result (nil for an
// interpreted environment), the run's, whether the compile was cached.
// A failed compile is compile_error.
func (h *handler) execute(ctx context.Context, hdr http.Header, p *prepared, q *runRequest, runApplied limits, runNative map[string]int64) (*runResult, *runResult, bool, error) {
	var ans nativeAnswer
	if _, err := h.n.Call(ctx, http.MethodPost, "/v1/run", hdr, runBody(p.b, q, p.native, runNative), &ans); err != nil {
		return nil, nil, false, nativeError(ctx, hdr, err)
	}
	var build *runResult
	if ans.Compile != nil {
		if ans.Compile.Status == "internal_error" {
			return nil, nil, false, failure(ctx, hdr, errInternal)
		}
		r := result(ans.Compile, p.applied)
		if ans.Compile.Status != "ok" {
			return nil, nil, false, &apiError{status: http.StatusBadRequest, code: "compile_error", details: r}
		}
		build = &r
	}
	if ans.Run == nil {
		return nil, nil, false, failure(ctx, hdr, errInternal)
	}
	if ans.Run.Status == "internal_error" {
		return nil, nil, false, failure(ctx, hdr, errInternal)
	}
	run := result(ans.Run, runApplied)
	return build, &run, ans.Cached, nil
}

// buildRun answers POST /run.
func (h *handler) buildRun(ctx context.Context, hdr http.Header, w http.ResponseWriter, r *http.Request) (any, error) {
	in, err := h.nativeInfo(ctx, hdr)
	if err != nil {
		return nil, err
	}
	var body struct {
		Build *buildRequest `json:"build"`
		Run   runRequest    `json:"run"`
	}
	if err := h.decode(ctx, hdr, w, r, &body); err != nil {
		return nil, err
	}
	if body.Build == nil {
		return nil, payloadError("field `build` is required")
	}
	p, err := h.prepare(ctx, hdr, body.Build, in)
	if err != nil {
		return nil, err
	}
	applied, native, err := checkRun(&body.Run, p.b, in)
	if err != nil {
		return nil, err
	}
	build, run, cached, err := h.execute(ctx, hdr, p, &body.Run, applied, native)
	if err != nil {
		return nil, err
	}
	known := h.programs.put(p.b)
	return &buildRunResult{ProgramID: p.b.id, TTL: int64(programTTL.Seconds()), Cached: known || cached, Build: build, Run: *run}, nil
}

// build answers POST /programs. A compiled environment compiles through
// a native run cut to 1 ms (runbox has no compile-only call); the
// compiled output stays in runbox's compile cache.
func (h *handler) build(ctx context.Context, hdr http.Header, w http.ResponseWriter, r *http.Request) (any, error) {
	in, err := h.nativeInfo(ctx, hdr)
	if err != nil {
		return nil, err
	}
	var b buildRequest
	if err := h.decode(ctx, hdr, w, r, &b); err != nil {
		return nil, err
	}
	p, err := h.prepare(ctx, hdr, &b, in)
	if err != nil {
		return nil, err
	}
	ans := &buildResult{ProgramID: b.id, TTL: int64(programTTL.Seconds())}
	if h.programs.get(b.id) != nil {
		ans.Cached = true
		return ans, nil
	}
	if p.env.Compiled {
		build, _, cached, err := h.execute(ctx, hdr, p, &runRequest{}, limits{}, map[string]int64{"wall_time_ms": 1, "cpu_time_ms": 1})
		if err != nil {
			return nil, err
		}
		ans.CompileResult, ans.Cached = build, cached
	}
	ans.Cached = h.programs.put(&b) || ans.Cached
	return ans, nil
}

// runProgram answers POST /programs/{program_id}/run.
func (h *handler) runProgram(ctx context.Context, hdr http.Header, w http.ResponseWriter, r *http.Request, id string) (any, error) {
	if !uuidRE.MatchString(id) {
		return nil, &apiError{status: http.StatusBadRequest, text: `failed to parse path ` + "`program_id`" + `: failed to parse "string(uuid)": invalid UUID`}
	}
	in, err := h.nativeInfo(ctx, hdr)
	if err != nil {
		return nil, err
	}
	var q runRequest
	if err := h.decode(ctx, hdr, w, r, &q); err != nil {
		return nil, err
	}
	b := h.programs.get(normalizeUUID(id))
	if b == nil {
		return nil, errProgramNotFound
	}
	applied, native, err := checkRun(&q, b, in)
	if err != nil {
		return nil, err
	}
	// The compile limits of the build apply again, if runbox compiles
	// again (its cache dropped the program).
	compApplied, compNative, _ := b.CompileLimits.resolve(in)
	_, run, _, err := h.execute(ctx, hdr, &prepared{b: b, applied: compApplied, native: compNative}, &q, applied, native)
	if err != nil {
		return nil, err
	}
	return run, nil
}
