package api

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/runbox-dev/runbox/internal/env"
	"github.com/runbox-dev/runbox/internal/runner"
)

// maxDepth bounds directory nesting of request file names.
const maxDepth = 16

var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

func invalid(ctx context.Context, location, rule string) error {
	return problem(ctx, http.StatusUnprocessableEntity, "invalid request: "+location+": "+rule, location, rule)
}

// validate checks everything the schema cannot and builds the runner's
// request. Every byte is hostile: names reach the box verbatim, so they are
// held to clean relative paths here, and again by runbox-init. What the
// boxes would refuse (argv and environment too large, files beyond the
// disk) is refused here, naming the field, before the request waits for a
// box. need is what the request will hold of the memory budget: its input
// and its worst-case output.
func (s *Server) validate(ctx context.Context, b *RunBody) (req runner.Request, need int64, err error) {
	req.Ceiling = keyCeiling(ctx)
	// Counts first, so that nothing below loops over more than a bound.
	if len(b.Files) > s.cfg.MaxFiles {
		return req, 0, invalid(ctx, "body.files", fmt.Sprintf("at most %d files (max_files)", s.cfg.MaxFiles))
	}
	if len(b.Cases) > s.cfg.MaxCases {
		return req, 0, invalid(ctx, "body.cases", fmt.Sprintf("at most %d cases (max_cases)", s.cfg.MaxCases))
	}
	switch {
	case b.Language == "" && len(b.Command) == 0:
		return req, 0, invalid(ctx, "body.language", "one of language and command is required")
	case b.Language != "" && len(b.Command) > 0:
		return req, 0, invalid(ctx, "body.command", "give language or command, not both")
	}
	var e *env.Environment
	if b.Language != "" {
		if e, err = s.envs.Lookup(b.Language); err != nil {
			return req, 0, problem(ctx, http.StatusUnprocessableEntity, "unknown language", "body.language", err.Error())
		}
		if !e.Available {
			return req, 0, problem(ctx, http.StatusUnprocessableEntity, "language not available on this server", "body.language",
				fmt.Sprintf("%s is not available on this server (%s)", e.Name, e.Reason))
		}
	}
	for i, a := range b.Command {
		loc := fmt.Sprintf("body.command[%d]", i)
		if a == "" || strings.ContainsRune(a, 0) {
			return req, 0, invalid(ctx, loc, "must be non-empty and contain no NUL")
		}
		if i == 0 && len(a) > runner.MaxCommandBytes {
			return req, 0, invalid(ctx, loc, fmt.Sprintf("a command is at most %d bytes (PATH_MAX)", runner.MaxCommandBytes))
		}
		if len(a) > runner.MaxArgBytes {
			return req, 0, invalid(ctx, loc, fmt.Sprintf("an argument is at most %d bytes", runner.MaxArgBytes))
		}
	}
	if err := checkArgs(ctx, "body.args", b.Args); err != nil {
		return req, 0, err
	}
	if req.Env, err = envList(ctx, "body.env", b.Env); err != nil {
		return req, 0, err
	}
	if req.Files, err = s.files(ctx, "body.files", b.Files); err != nil {
		return req, 0, err
	}
	if b.Main != "" && !slices.ContainsFunc(req.Files, func(f runner.File) bool { return f.Name == b.Main }) {
		return req, 0, invalid(ctx, "body.main", "must name one of the files")
	}
	if b.Language != "" && len(b.Files) == 0 {
		return req, 0, invalid(ctx, "body.files", "a language needs at least one file")
	}
	for i, p := range b.Outputs {
		if rule := checkPattern(p); rule != "" {
			return req, 0, invalid(ctx, fmt.Sprintf("body.outputs[%d]", i), rule)
		}
	}
	for i, c := range b.Cases {
		if err := checkArgs(ctx, fmt.Sprintf("body.cases[%d].args", i), c.Args); err != nil {
			return req, 0, err
		}
		req.Cases = append(req.Cases, runner.Case{Stdin: []byte(c.Stdin), Args: c.Args, ExpectedOutput: c.ExpectedOutput})
	}
	if req.Limits, err = s.limits(ctx, "body.limits", b.Limits); err != nil {
		return req, 0, err
	}
	if req.CompileLimits, err = s.limits(ctx, "body.compile_limits", b.CompileLimits); err != nil {
		return req, 0, err
	}
	req.Language, req.Command, req.Main, req.Stdin, req.Args, req.Outputs, req.MergeOutput =
		b.Language, b.Command, b.Main, []byte(b.Stdin), b.Args, b.Outputs, b.MergeOutput
	worst, err := s.checkBoxes(ctx, b, e, req)
	if err != nil {
		return req, 0, err
	}
	var bodyLen int64
	if t := ticketFrom(ctx); t != nil {
		bodyLen = t.bodyLen
	}
	need = inputFactor*bodyLen + worst
	if need > s.cfg.MemoryBudget {
		return req, 0, invalid(ctx, "body", fmt.Sprintf("the request would hold %d bytes (its input and its worst-case output), more than the server's memory_budget %d", need, s.cfg.MemoryBudget))
	}
	return req, need, nil
}

// envList turns an environment map into sorted KEY=VALUE (map order is
// random; the box and the compile cache's key want one).
func envList(ctx context.Context, loc string, m map[string]string) ([]string, error) {
	var out []string
	for k, v := range m {
		if !envKeyRE.MatchString(k) {
			return nil, invalid(ctx, loc+"."+k, "names are letters, digits and _ (not starting with a digit)")
		}
		if strings.ContainsRune(v, 0) {
			return nil, invalid(ctx, loc+"."+k, "must contain no NUL")
		}
		if len(k)+1+len(v) > runner.MaxArgBytes {
			return nil, invalid(ctx, loc+"."+k, fmt.Sprintf("NAME=value is at most %d bytes", runner.MaxArgBytes))
		}
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out, nil
}

// files checks a request's files (names, duplicates, encodings, the total
// size) and decodes them.
func (s *Server) files(ctx context.Context, loc string, in []FileIn) ([]runner.File, error) {
	if len(in) > s.cfg.MaxFiles {
		return nil, invalid(ctx, loc, fmt.Sprintf("at most %d files (max_files)", s.cfg.MaxFiles))
	}
	var out []runner.File
	seen := map[string]bool{}
	dirs := map[string]bool{}
	var total int64
	for i, f := range in {
		loc := fmt.Sprintf("%s[%d]", loc, i)
		if rule := checkName(f.Name); rule != "" {
			return nil, invalid(ctx, loc+".name", rule)
		}
		if seen[f.Name] {
			return nil, invalid(ctx, loc+".name", "duplicate file name")
		}
		if dirs[f.Name] {
			return nil, invalid(ctx, loc+".name", "is also a directory of another file")
		}
		for d := path.Dir(f.Name); d != "."; d = path.Dir(d) {
			if seen[d] {
				return nil, invalid(ctx, loc+".name", "a file of that name is its directory")
			}
			dirs[d] = true
		}
		seen[f.Name] = true
		var data []byte
		switch f.Encoding {
		case "", "utf8":
			data = []byte(f.Content)
		case "base64":
			var err error
			if data, err = base64.StdEncoding.DecodeString(f.Content); err != nil {
				return nil, invalid(ctx, loc+".content", "not valid base64")
			}
		default:
			return nil, invalid(ctx, loc+".encoding", "utf8 or base64")
		}
		total += int64(len(data))
		if total > s.cfg.MaxFilesBytes {
			return nil, invalid(ctx, loc+".content", fmt.Sprintf("files hold more than %d bytes in all (max_files_size)", s.cfg.MaxFilesBytes))
		}
		out = append(out, runner.File{Name: f.Name, Content: data})
	}
	return out, nil
}

// checkArgs checks a list of arguments.
func checkArgs(ctx context.Context, loc string, args []string) error {
	for j, a := range args {
		if strings.ContainsRune(a, 0) {
			return invalid(ctx, fmt.Sprintf("%s[%d]", loc, j), "must contain no NUL")
		}
		if len(a) > runner.MaxArgBytes {
			return invalid(ctx, fmt.Sprintf("%s[%d]", loc, j), fmt.Sprintf("an argument is at most %d bytes", runner.MaxArgBytes))
		}
	}
	return nil
}

// checkBoxes checks what the boxes of a request would be given against
// what they accept — the argv and environment, the files against the
// disk — and returns the request's worst-case output, held to
// max_response.
func (s *Server) checkBoxes(ctx context.Context, b *RunBody, e *env.Environment, req runner.Request) (worst int64, err error) {
	runArgv, envv := req.Command, req.Env
	runLim := req.Limits.WithDefaults(s.cfg.Defaults).WithDefaults(runner.DefaultLimits)
	var compileArgv []string
	var compileLim runner.Limits
	compiled := e != nil && e.Compiled()
	if e != nil {
		main := runner.MainFile(req)
		names := make([]string, len(req.Files))
		for i, f := range req.Files {
			names[i] = f.Name
		}
		if runArgv, err = env.Expand(e.Run, main, names); err != nil {
			return 0, invalid(ctx, mainLocation(req), err.Error()+"; rename it")
		}
		if compiled {
			if compileArgv, err = env.Expand(e.Compile, main, names); err != nil {
				return 0, invalid(ctx, mainLocation(req), err.Error()+"; rename it")
			}
		}
		envv = append(append([]string{}, e.Env...), req.Env...)
		runLim = runner.RunLimits(req.Limits, e, s.cfg.Defaults)
		compileLim = runner.CompileLimits(req.CompileLimits, e, s.cfg.Defaults)
	}

	// The argv and environment of every box, as init will receive them.
	tooLarge := func(n int64) error {
		return invalid(ctx, specLocation(req), fmt.Sprintf("the argv and environment of a box would take %d bytes; a box accepts at most %d", n, runner.MaxConfigBytes))
	}
	argsets := [][]string{req.Args}
	if len(req.Cases) > 0 {
		argsets = argsets[:0]
		for _, c := range req.Cases {
			argsets = append(argsets, c.Args)
		}
	}
	for _, args := range argsets {
		argv := append(append([]string{}, runArgv...), args...)
		if n := runner.ConfigBytes(argv, envv); n > runner.MaxConfigBytes {
			return 0, tooLarge(n)
		}
	}
	if n := runner.ConfigBytes(compileArgv, envv); compiled && n > runner.MaxConfigBytes {
		return 0, tooLarge(n)
	}

	// The files, in the workspace of every box. A compiled program's run
	// box gets what the compile left, which the runner checks.
	bytes, inodes := runner.Footprint(req.Files)
	type box struct {
		disk  int64
		field string // the request's own disk limit, when it set one
	}
	boxes := []box{{runLim.Disk, ""}}
	if b.Limits != nil && b.Limits.DiskBytes != nil {
		boxes[0].field = "body.limits.disk_bytes"
	}
	if compiled {
		boxes = append(boxes, box{compileLim.Disk, ""})
		if b.CompileLimits != nil && b.CompileLimits.DiskBytes != nil {
			boxes[1].field = "body.compile_limits.disk_bytes"
		}
	}
	for _, bx := range boxes {
		if bytes > bx.disk || inodes > runner.DiskInodes(bx.disk) {
			loc := bx.field
			if loc == "" {
				loc = "body.files"
			}
			return 0, invalid(ctx, loc, fmt.Sprintf("the files need %d bytes of the box's disk (each file rounded up to 4096-byte pages) and %d inodes; "+
				"the box has disk_bytes %d (%d inodes)", bytes, inodes, bx.disk, runner.DiskInodes(bx.disk)))
		}
	}

	// The answer's output at its worst: every stream of every box full.
	runs := int64(max(1, len(req.Cases)))
	worst = runs * 2 * runLim.Output
	files := int64(0)
	if len(req.Cases) == 0 && len(req.Outputs) > 0 {
		files = runner.MaxOutputBytes
	}
	compileOut := int64(0)
	if compiled {
		compileOut = 2 * compileLim.Output
	}
	worst += files + compileOut
	if worst > s.cfg.MaxResponseBytes {
		loc := "body.limits.output_bytes"
		switch {
		case b.Limits != nil && b.Limits.OutputBytes != nil:
		case len(req.Cases) > 1:
			loc = "body.cases"
		case compileOut > runs*2*runLim.Output:
			loc = "body.compile_limits.output_bytes"
		}
		return 0, invalid(ctx, loc, fmt.Sprintf("the answer could carry %d bytes of output (%d runs × 2 streams × output_bytes %d, compile output %d, returned files %d), "+
			"more than the server's max_response %d: lower output_bytes or send fewer cases", worst, runs, runLim.Output, compileOut, files, s.cfg.MaxResponseBytes))
	}
	return worst, nil
}

// checkName returns the rule a file name breaks, or "".
func checkName(name string) string {
	switch {
	case name == "":
		return "must not be empty"
	case strings.ContainsRune(name, 0):
		return "must contain no NUL"
	case !utf8.ValidString(name):
		return "must be valid UTF-8"
	case strings.HasPrefix(name, "/"):
		return "must be relative to the workspace"
	case strings.Contains(name, "\\"):
		return "must use / as the separator"
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "must not contain .."
		}
		if el == "" || el == "." {
			return "must be a clean path (no empty or . elements)"
		}
	}
	if strings.Count(name, "/") >= maxDepth {
		return fmt.Sprintf("at most %d directory levels", maxDepth)
	}
	return ""
}

func checkPattern(p string) string {
	if rule := checkName(strings.TrimSuffix(strings.ReplaceAll(p, "**", "x"), "/")); rule != "" {
		return rule
	}
	if _, err := path.Match(p, ""); err != nil {
		return "not a valid pattern"
	}
	return ""
}

// limits turns request limits into runner limits: absent fields take the
// server's defaults; a value above the server's maximum is refused, never
// clamped (zero and negative values are refused by the schema).
func (s *Server) limits(ctx context.Context, loc string, in *LimitsIn) (runner.Limits, error) {
	return s.limitsWithin(ctx, loc, in, s.cfg.Maxima)
}

// limitsWithin is limits with other maxima.
func (s *Server) limitsWithin(ctx context.Context, loc string, in *LimitsIn, mx runner.Limits) (runner.Limits, error) {
	out := runner.Limits{}
	if in == nil {
		return out, nil
	}
	// A key's maxima lower the server's.
	whose := map[string]string{}
	kc := keyCeiling(ctx)
	lower := func(name string, m *time.Duration, c time.Duration) {
		if c > 0 && c < *m {
			*m, whose[name] = c, "this API key's"
		}
	}
	lower("wall_time_ms", &mx.WallTime, kc.WallTime)
	lower("cpu_time_ms", &mx.CPUTime, kc.CPUTime)
	if kc.Memory > 0 && kc.Memory < mx.Memory {
		mx.Memory, whose["memory_bytes"] = kc.Memory, "this API key's"
	}
	if kc.Processes > 0 && kc.Processes < mx.Processes {
		mx.Processes, whose["processes"] = kc.Processes, "this API key's"
	}
	type field struct {
		name string
		v    *int64
		max  int64
		set  func(int64)
	}
	fields := []field{
		{"wall_time_ms", in.WallTimeMS, mx.WallTime.Milliseconds(), func(v int64) { out.WallTime = time.Duration(v) * time.Millisecond }},
		{"cpu_time_ms", in.CPUTimeMS, mx.CPUTime.Milliseconds(), func(v int64) { out.CPUTime = time.Duration(v) * time.Millisecond }},
		{"memory_bytes", in.MemoryBytes, mx.Memory, func(v int64) { out.Memory = v }},
		{"processes", in.Processes, int64(mx.Processes), func(v int64) { out.Processes = int(v) }},
		{"file_size_bytes", in.FileSizeBytes, mx.FileSize, func(v int64) { out.FileSize = v }},
		{"open_files", in.OpenFiles, int64(mx.OpenFiles), func(v int64) { out.OpenFiles = int(v) }},
		{"output_bytes", in.OutputBytes, mx.Output, func(v int64) { out.Output = v }},
		{"disk_bytes", in.DiskBytes, mx.Disk, func(v int64) { out.Disk = v }},
	}
	for _, f := range fields {
		if f.v == nil {
			continue
		}
		if *f.v < 1 {
			return out, invalid(ctx, loc+"."+f.name, "must be at least 1")
		}
		if *f.v > f.max {
			who := whose[f.name]
			if who == "" {
				who = "the server's"
			}
			return out, invalid(ctx, loc+"."+f.name, fmt.Sprintf("must be at most %d (%s maximum)", f.max, who))
		}
		f.set(*f.v)
	}
	if err := out.WithDefaults(s.cfg.Defaults).Validate(); err != nil {
		return out, invalid(ctx, loc, err.Error())
	}
	return out, nil
}
