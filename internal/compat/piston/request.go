package piston

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"path"
	"slices"
	"strings"
)

// The native API's JSON, as far as the adapter reads or writes it (the
// native types live in internal/api; an adapter speaks to it as a client
// does).
type (
	nativeEnv struct {
		Name      string   `json:"name"`
		Version   string   `json:"version"`
		Aliases   []string `json:"aliases"`
		Compiled  bool     `json:"compiled"`
		Available bool     `json:"available"`
		// Source is the environment's main file name (main.c), when the
		// native API says it.
		Source string `json:"source"`
	}
	nativeLimits struct {
		WallTimeMS  int64 `json:"wall_time_ms"`
		CPUTimeMS   int64 `json:"cpu_time_ms"`
		MemoryBytes int64 `json:"memory_bytes"`
	}
	nativeInfo struct {
		Maxima       nativeLimits `json:"maxima"`
		MaxBodyBytes int64        `json:"max_body_bytes"`
	}
	nativeFile struct {
		Name     string `json:"name"`
		Content  string `json:"content"`
		Encoding string `json:"encoding,omitempty"`
	}
	nativeLimitsIn struct {
		WallTimeMS  *int64 `json:"wall_time_ms,omitempty"`
		CPUTimeMS   *int64 `json:"cpu_time_ms,omitempty"`
		MemoryBytes *int64 `json:"memory_bytes,omitempty"`
	}
	nativeRun struct {
		Language      string          `json:"language"`
		Files         []nativeFile    `json:"files"`
		Main          string          `json:"main,omitempty"`
		Stdin         string          `json:"stdin,omitempty"`
		Args          []string        `json:"args,omitempty"`
		Limits        *nativeLimitsIn `json:"limits,omitempty"`
		CompileLimits *nativeLimitsIn `json:"compile_limits,omitempty"`
	}
)

// job is a Piston request (an execute body or a connect init) made a
// native one.
type job struct {
	env  nativeEnv
	body nativeRun
}

// badRequest is Piston's answer to a request it cannot take.
func badRequest(format string, a ...any) error {
	return &failure{http.StatusBadRequest, fmt.Sprintf(format, a...), ""}
}

// job reads a Piston request, checking it in the order and with the
// messages of Piston's get_job (api/v2.js), and builds the native
// request.
func (h *handler) job(ctx context.Context, w http.ResponseWriter, raw []byte, info *nativeInfo) (*job, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, badRequest("the body is not valid JSON: %v", err)
		}
		return nil, badRequest("the body must be a JSON object")
	}
	language, ok := str(m["language"])
	if !ok || language == "" {
		return nil, badRequest("language is required as a string")
	}
	version, ok := str(m["version"])
	if !ok || version == "" {
		return nil, badRequest("version is required as a string")
	}
	var files []map[string]json.RawMessage
	if !isArray(m["files"]) {
		return nil, badRequest("files is required as an array")
	}
	var items []json.RawMessage
	_ = json.Unmarshal(m["files"], &items)
	for i, it := range items {
		var f map[string]json.RawMessage
		_ = json.Unmarshal(it, &f) // not an object: no content below
		if _, ok := str(f["content"]); !ok {
			return nil, badRequest("files[%d].content is required as a string", i)
		}
		files = append(files, f)
	}

	envs, err := h.environments(ctx, w)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(envs, func(e nativeEnv) bool {
		return e.Available && (e.Name == language || slices.Contains(e.Aliases, language)) && matches(version, semver(e.Version))
	})
	if i < 0 {
		return nil, badRequest("%s-%s runtime is unknown", language, version)
	}
	j := &job{env: envs[i], body: nativeRun{Language: envs[i].Name}}

	if j.body.Files, j.body.Main, err = nativeFiles(files, j.env.Source); err != nil {
		return nil, err
	}
	if j.body.Limits, j.body.CompileLimits, err = limits(m, info.Maxima); err != nil {
		return nil, err
	}
	if raw, ok := m["stdin"]; ok && !null(raw) {
		stdin, ok := str(raw)
		if !ok {
			return nil, badRequest("stdin must be a string")
		}
		j.body.Stdin = stdin
	}
	// Piston adds a trailing newline to stdin (job.js).
	if !strings.HasSuffix(j.body.Stdin, "\n") {
		j.body.Stdin += "\n"
	}
	if raw, ok := m["args"]; ok && !null(raw) {
		if !isArray(raw) {
			return nil, badRequest("args must be an array of strings")
		}
		var args []json.RawMessage
		_ = json.Unmarshal(raw, &args)
		for i, a := range args {
			s, ok := str(a)
			if !ok {
				return nil, badRequest("args[%d] must be a string", i)
			}
			j.body.Args = append(j.body.Args, s)
		}
	}
	return j, nil
}

// nativeFiles makes Piston's files the native API's. The main file is the
// first utf8 one, as Piston runs it (job.js); hex content is sent as
// base64, the only binary encoding of the native API.
func nativeFiles(files []map[string]json.RawMessage, source string) ([]nativeFile, string, error) {
	out := make([]nativeFile, 0, len(files))
	main := ""
	for i, f := range files {
		content, _ := str(f["content"])
		name := ""
		if raw, ok := f["name"]; ok && !null(raw) {
			var ok bool
			if name, ok = str(raw); !ok {
				return nil, "", badRequest("files[%d].name must be a string", i)
			}
		}
		// Piston treats an encoding it does not know as utf8.
		enc, _ := str(f["encoding"])
		if enc != "base64" && enc != "hex" {
			enc = "utf8"
		}
		if name == "" {
			name = unnamed(i, main == "" && enc == "utf8", source)
		}
		nf := nativeFile{Name: name, Content: content}
		switch enc {
		case "hex":
			b, err := hex.DecodeString(strings.TrimSpace(content))
			if err != nil {
				return nil, "", badRequest("files[%d].content is not valid hex", i)
			}
			nf.Content, nf.Encoding = base64.StdEncoding.EncodeToString(b), "base64"
		case "base64":
			b, err := lenientBase64(content)
			if err != nil {
				return nil, "", badRequest("files[%d].content is not valid base64", i)
			}
			nf.Content, nf.Encoding = base64.StdEncoding.EncodeToString(b), "base64"
		default:
			if main == "" {
				main = name
			}
		}
		out = append(out, nf)
	}
	if main == "" {
		return nil, "", badRequest("files must include at least one utf8 encoded file")
	}
	if main == out[0].Name {
		main = "" // the native API's default
	}
	return out, main, nil
}

// unnamed names the i-th file when the request does not: file{i}.code,
// Piston's name. When the native API tells the environment's source file
// name (main.c, Main.java), the main file takes it and the others its
// extension: runbox's environments compile the files with the main
// file's extension, where Piston's packages rename the files themselves.
func unnamed(i int, isMain bool, source string) string {
	name := fmt.Sprintf("file%d.code", i)
	switch {
	case source == "":
		return name
	case isMain:
		return source
	}
	return name + path.Ext(source)
}

// lenientBase64 decodes base64 as Node's Buffer.from does: standard or
// URL-safe alphabet, padding optional, whitespace ignored.
func lenientBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n', '=':
			return -1
		case '-':
			return '+'
		case '_':
			return '/'
		}
		return r
	}, s)
	return base64.RawStdEncoding.DecodeString(s)
}

// limit is one of Piston's six limits and the native field it becomes.
type limit struct {
	name    string
	compile bool
	max     int64
	set     func(*nativeLimitsIn, *int64)
}

// limits reads Piston's limits in get_job's order and messages. Left out,
// null, 0 or -1 (Piston's "no limit" for memory) take the server's
// default; a limit above the server's maximum is refused as Piston
// refuses one above its configured limit.
func limits(m map[string]json.RawMessage, mx nativeLimits) (run, compile *nativeLimitsIn, err error) {
	setWall := func(l *nativeLimitsIn, v *int64) { l.WallTimeMS = v }
	setCPU := func(l *nativeLimitsIn, v *int64) { l.CPUTimeMS = v }
	setMem := func(l *nativeLimitsIn, v *int64) { l.MemoryBytes = v }
	all := []limit{
		{"compile_memory_limit", true, mx.MemoryBytes, setMem},
		{"run_memory_limit", false, mx.MemoryBytes, setMem},
		{"compile_timeout", true, mx.WallTimeMS, setWall},
		{"run_timeout", false, mx.WallTimeMS, setWall},
		{"compile_cpu_time", true, mx.CPUTimeMS, setCPU},
		{"run_cpu_time", false, mx.CPUTimeMS, setCPU},
	}
	for _, l := range all {
		raw, ok := m[l.name]
		if !ok || falsy(raw) {
			continue
		}
		var v float64
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, nil, badRequest("If specified, %s must be a number", l.name)
		}
		if v == -1 {
			continue
		}
		n := int64(math.Ceil(v))
		if v > float64(math.MaxInt64) || n > l.max {
			return nil, nil, badRequest("%s cannot exceed the configured limit of %d", l.name, l.max)
		}
		if v < 0 {
			return nil, nil, badRequest("%s must be non-negative", l.name)
		}
		target := &run
		if l.compile {
			target = &compile
		}
		if *target == nil {
			*target = &nativeLimitsIn{}
		}
		l.set(*target, &n)
	}
	return run, compile, nil
}

// str reads a JSON string.
func str(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	return s, json.Unmarshal(raw, &s) == nil
}

func isArray(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '['
}

func null(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// falsy reports a JavaScript falsy JSON value: Piston skips those limits.
func falsy(raw json.RawMessage) bool {
	switch s := string(bytes.TrimSpace(raw)); s {
	case "null", "false", `""`:
		return true
	default:
		var v float64
		return json.Unmarshal(raw, &v) == nil && v == 0
	}
}
