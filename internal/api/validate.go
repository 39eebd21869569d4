package api

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

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
// held to clean relative paths here, and again by runbox-init.
func (s *Server) validate(ctx context.Context, b *RunBody) (runner.Request, error) {
	var req runner.Request
	switch {
	case b.Language == "" && len(b.Command) == 0:
		return req, invalid(ctx, "body.language", "one of language and command is required")
	case b.Language != "" && len(b.Command) > 0:
		return req, invalid(ctx, "body.command", "give language or command, not both")
	}
	if b.Language != "" {
		if _, err := s.envs.Lookup(b.Language); err != nil {
			return req, problem(ctx, http.StatusUnprocessableEntity, "unknown language", "body.language", err.Error())
		}
	}
	for i, a := range b.Command {
		if a == "" || strings.ContainsRune(a, 0) {
			return req, invalid(ctx, fmt.Sprintf("body.command[%d]", i), "must be non-empty and contain no NUL")
		}
	}
	for i, a := range b.Args {
		if strings.ContainsRune(a, 0) {
			return req, invalid(ctx, fmt.Sprintf("body.args[%d]", i), "must contain no NUL")
		}
	}
	for k, v := range b.Env {
		if !envKeyRE.MatchString(k) {
			return req, invalid(ctx, "body.env."+k, "names are letters, digits and _ (not starting with a digit)")
		}
		if strings.ContainsRune(v, 0) {
			return req, invalid(ctx, "body.env."+k, "must contain no NUL")
		}
		req.Env = append(req.Env, k+"="+v)
	}
	if len(b.Files) > s.cfg.MaxFiles {
		return req, invalid(ctx, "body.files", fmt.Sprintf("at most %d files", s.cfg.MaxFiles))
	}
	seen := map[string]bool{}
	dirs := map[string]bool{}
	var total int64
	for i, f := range b.Files {
		loc := fmt.Sprintf("body.files[%d]", i)
		if rule := checkName(f.Name); rule != "" {
			return req, invalid(ctx, loc+".name", rule)
		}
		if seen[f.Name] {
			return req, invalid(ctx, loc+".name", "duplicate file name")
		}
		if dirs[f.Name] {
			return req, invalid(ctx, loc+".name", "is also a directory of another file")
		}
		for d := path.Dir(f.Name); d != "."; d = path.Dir(d) {
			if seen[d] {
				return req, invalid(ctx, loc+".name", "a file of that name is its directory")
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
				return req, invalid(ctx, loc+".content", "not valid base64")
			}
		}
		total += int64(len(data))
		if total > s.cfg.MaxFilesBytes {
			return req, invalid(ctx, loc+".content", fmt.Sprintf("files hold more than %d bytes in all", s.cfg.MaxFilesBytes))
		}
		req.Files = append(req.Files, runner.File{Name: f.Name, Content: data})
	}
	if b.Main != "" && !seen[b.Main] {
		return req, invalid(ctx, "body.main", "must name one of the files")
	}
	if b.Language != "" && len(b.Files) == 0 {
		return req, invalid(ctx, "body.files", "a language needs at least one file")
	}
	for i, p := range b.Outputs {
		if rule := checkPattern(p); rule != "" {
			return req, invalid(ctx, fmt.Sprintf("body.outputs[%d]", i), rule)
		}
	}
	if len(b.Cases) > s.cfg.MaxCases {
		return req, invalid(ctx, "body.cases", fmt.Sprintf("at most %d cases", s.cfg.MaxCases))
	}
	for i, c := range b.Cases {
		for j, a := range c.Args {
			if strings.ContainsRune(a, 0) {
				return req, invalid(ctx, fmt.Sprintf("body.cases[%d].args[%d]", i, j), "must contain no NUL")
			}
		}
		req.Cases = append(req.Cases, runner.Case{Stdin: []byte(c.Stdin), Args: c.Args, ExpectedOutput: c.ExpectedOutput})
	}
	var err error
	if req.Limits, err = s.limits(ctx, "body.limits", b.Limits); err != nil {
		return req, err
	}
	if req.CompileLimits, err = s.limits(ctx, "body.compile_limits", b.CompileLimits); err != nil {
		return req, err
	}
	req.Language, req.Command, req.Main, req.Stdin, req.Args, req.Outputs =
		b.Language, b.Command, b.Main, []byte(b.Stdin), b.Args, b.Outputs
	return req, nil
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
	out := runner.Limits{}
	if in == nil {
		return out, nil
	}
	mx := s.cfg.Maxima
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
			return out, invalid(ctx, loc+"."+f.name, fmt.Sprintf("must be at most %d (the server's maximum)", f.max))
		}
		f.set(*f.v)
	}
	if err := out.WithDefaults(s.cfg.Defaults).Validate(); err != nil {
		return out, invalid(ctx, loc, err.Error())
	}
	return out, nil
}
