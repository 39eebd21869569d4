package snekbox

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/runbox-dev/runbox/internal/compat"
)

// evalRequest is a checked POST /eval body.
type evalRequest struct {
	args  []string
	files []evalFile
	// fileError, when set, is snekbox's answer to a file it could not
	// write (an EvalError: 200, no returncode).
	fileError string
	// nulArg: an argument holds a NUL, which snekbox's Popen refuses.
	nulArg bool
	// argsDropped is how many leading empty arguments were dropped;
	// inputAt is the place of input in args (-1: none).
	argsDropped, inputAt int
}

// evalFile is one file of the request, under its clean name.
type evalFile struct {
	name    string // clean, relative to the workspace
	content string // standard base64
	given   string // the path as the request gave it
	index   int    // its place in the request's files
}

// pathPattern is the schema's pattern of a file path, as snekbox writes
// it (quoted in its error descriptions).
const pathPattern = `^(?!/)(?!.*\\0).*$`

// parseRequest checks body as snekbox does, in its order: the JSON, the
// schema (one error, the one jsonschema's best_match picks), the
// executable path, then each file's path and content.
func parseRequest(body []byte) (*evalRequest, error) {
	if len(body) == 0 {
		return nil, badRequest("Invalid JSON", "Could not parse an empty JSON body")
	}
	v, err := parseJSON(body)
	if err != nil {
		return nil, badRequest("Invalid JSON", "Could not parse JSON body - "+err.Error())
	}
	if msg := schemaError(v); msg != "" {
		return nil, badRequest("Request data failed validation", msg)
	}
	req := &evalRequest{inputAt: -1}
	if args, ok := v.get("args"); ok {
		for _, a := range args.elems {
			req.args = append(req.args, a.text)
		}
	}
	if input, ok := v.get("input"); ok {
		if _, ok := v.get("args"); !ok {
			req.args = []string{"-c"}
		}
		req.args = append(req.args, input.text)
		req.inputAt = len(req.args) - 1
	}
	// snekbox drops leading empty arguments before the interpreter sees
	// them (iter_lstrip).
	for len(req.args) > 0 && req.args[0] == "" {
		req.args, req.argsDropped, req.inputAt = req.args[1:], req.argsDropped+1, req.inputAt-1
	}
	for _, a := range req.args {
		if strings.ContainsRune(a, 0) {
			req.nulArg = true
		}
	}
	if exe, ok := v.get("executable_path"); ok && exe.text != "" && !servesPython(exe.text) {
		return nil, badRequest("executable_path does not exist",
			fmt.Sprintf("%s names no interpreter runbox serves: only %s and paths whose name starts with python (runbox's python)", exe.text, DefaultExecutablePath))
	}
	files, _ := v.get("files")
	byName := map[string]int{}
	for i, f := range files.elems {
		p, _ := f.get("path")
		c, _ := f.get("content")
		name, err := safePath(p.text)
		if err != nil {
			return nil, err
		}
		content, err := lenientBase64(c.text)
		if err != nil {
			return nil, badRequest("Request file is invalid", fmt.Sprintf("Invalid base64 encoding for file '%s'", p.text))
		}
		if name == "." {
			// The home itself: snekbox's write fails, an EvalError.
			if req.fileError == "" {
				req.fileError = fmt.Sprintf("IsADirectoryError: Failed to create file '%s'.", p.text)
			}
			continue
		}
		// A name given twice is written twice: the last content stays.
		if j, ok := byName[name]; ok {
			req.files[j].content, req.files[j].given, req.files[j].index = content, p.text, i
			continue
		}
		byName[name] = len(req.files)
		req.files = append(req.files, evalFile{name: name, content: content, given: p.text, index: i})
	}
	return req, nil
}

// servesPython says whether executable_path maps to runbox's python.
func servesPython(p string) bool {
	return p == DefaultExecutablePath || strings.HasPrefix(path.Base(p), "python")
}

// safePath is a file path's clean form, or snekbox's answer to a path
// that leaves the home. A NUL makes Python's path resolution fail with
// the same answer.
func safePath(p string) (string, error) {
	name := path.Clean(p)
	if name == ".." || strings.HasPrefix(name, "../") || strings.ContainsRune(p, 0) {
		return "", badRequest("Request file is invalid", fmt.Sprintf("File path '%s' may not traverse beyond root", p))
	}
	return name, nil
}

// notBase64 matches what Python's non-strict b64decode discards before
// decoding.
var notBase64 = regexp.MustCompile(`[^A-Za-z0-9+/=]+`)

// lenientBase64 is s as standard base64 the native API accepts, decoded
// as snekbox decodes it: characters outside the alphabet are skipped,
// the padding is required.
func lenientBase64(s string) (string, error) {
	s = notBase64.ReplaceAllString(s, "")
	if _, err := base64.StdEncoding.DecodeString(s); err != nil {
		return "", err
	}
	return s, nil
}

// schemaError is the description jsonschema gives of v's first error
// against snekbox's schema, or "". jsonschema's best_match prefers the
// shallowest error, then one that is not of anyOf, then the first found
// (keywords in the schema's order: type, properties, anyOf; properties
// in the schema's order).
func schemaError(v value) string {
	if v.kind != kindObject {
		return notOfType(v, "object")
	}
	_, hasInput := v.get("input")
	_, hasArgs := v.get("args")
	if !hasInput && !hasArgs {
		return v.repr() + " is not valid under any of the given schemas"
	}
	input, _ := v.get("input")
	args, _ := v.get("args")
	files, hasFiles := v.get("files")
	exe, hasExe := v.get("executable_path")
	// Depth 1: the properties' types.
	switch {
	case hasInput && input.kind != kindString:
		return notOfType(input, "string")
	case hasArgs && args.kind != kindArray:
		return notOfType(args, "array")
	case hasFiles && files.kind != kindArray:
		return notOfType(files, "array")
	case hasExe && exe.kind != kindString:
		return notOfType(exe, "string")
	}
	// Depth 2: the items of args, then of files (each file's type, then
	// its required path).
	for _, a := range args.elems {
		if a.kind != kindString {
			return notOfType(a, "string")
		}
	}
	for _, f := range files.elems {
		if f.kind != kindObject {
			return notOfType(f, "object")
		}
		if _, ok := f.get("path"); !ok {
			return "'path' is a required property"
		}
	}
	// Depth 3: each file's path (type, pattern), then its content.
	for _, f := range files.elems {
		p, _ := f.get("path")
		if p.kind != kindString {
			return notOfType(p, "string")
		}
		if !matchesPathPattern(p.text) {
			return pyStr(p.text) + " does not match " + pyStr(pathPattern)
		}
		if c, ok := f.get("content"); ok && c.kind != kindString {
			return notOfType(c, "string")
		}
	}
	return ""
}

func notOfType(v value, typ string) string { return v.repr() + " is not of type '" + typ + "'" }

// matchesPathPattern is Python's re.search(pathPattern, p): not absolute,
// no backslash-zero in the first line, and "." matching no newline, one
// line at most (with "$" also matching before a final newline).
func matchesPathPattern(p string) bool {
	line := strings.TrimSuffix(p, "\n")
	return !strings.HasPrefix(p, "/") && !strings.Contains(line, "\n") && !strings.Contains(line, `\0`)
}

// nativeBody is a native POST /v1/run body (api.RunBody), as far as the
// adapter fills it.
type nativeBody struct {
	Command []string          `json:"command"`
	Args    []string          `json:"args,omitempty"`
	Files   []nativeFile      `json:"files,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Outputs []string          `json:"outputs"`
	// MergeOutput: one pipe as both descriptors, as snekbox gives its
	// program, so the answer's stdout is interleaved as written.
	MergeOutput bool `json:"merge_output"`
}

type nativeFile struct {
	Name     string `json:"name"`
	Content  string `json:"content"`
	Encoding string `json:"encoding"`
}

// native is the native run of the request: runbox's python interpreter
// with the arguments (they may be empty strings: the native command may
// not), every file, and every file of the workspace asked back.
func (req *evalRequest) native() nativeBody {
	b := nativeBody{
		Command: []string{interpreter},
		Args:    req.args,
		// snekbox's environment for the interpreter, but HOME (/box, the
		// native workspace).
		Env: map[string]string{
			"PYTHONDONTWRITEBYTECODE": "true",
			"PYTHONIOENCODING":        "utf-8:strict",
			"PYTHONUNBUFFERED":        "true",
		},
		Outputs:     []string{"**"},
		MergeOutput: true,
	}
	for _, f := range req.files {
		b.Files = append(b.Files, nativeFile{Name: f.name, Content: f.content, Encoding: "base64"})
	}
	return b
}

// nativeError is the answer to a native run that did not answer 200: the
// request's fault (400, 422) is a 400 naming snekbox's field; runbox
// failing is snekbox's answer to NsJail failing (200, no returncode, the
// reason as stdout); a full server is a 429 or 503 to retry.
func (req *evalRequest) nativeError(ctx context.Context, reqID string, err error) (*evalAnswer, error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	failed := "runbox failed to run the request"
	if reqID != "" {
		failed += " (request id " + reqID + ")"
	}
	var p *compat.Problem
	if !errors.As(err, &p) {
		return evalError(failed), nil
	}
	switch {
	case p.Status == http.StatusBadRequest || p.Status == http.StatusUnprocessableEntity:
		field, rule := req.field(p), p.Detail
		if len(p.Errors) > 0 && p.Errors[0].Message != "" {
			rule = p.Errors[0].Message
		}
		title := "Request data failed validation"
		if strings.HasPrefix(field, "files") {
			title = "Request file is invalid"
		}
		if field != "" {
			rule = field + ": " + rule
		}
		return nil, badRequest(title, rule)
	case p.Status >= http.StatusInternalServerError && p.Status != http.StatusServiceUnavailable:
		return evalError(failed), nil
	}
	return nil, serverError(ctx, err)
}

// field names, in snekbox's terms, the field a native problem is about.
func (req *evalRequest) field(p *compat.Problem) string {
	if len(p.Errors) == 0 {
		return ""
	}
	loc := strings.TrimPrefix(strings.TrimPrefix(p.Errors[0].Location, "body"), ".")
	name, rest, _ := strings.Cut(loc, ".")
	idx := -1
	if i := strings.IndexByte(name, '['); i >= 0 && strings.HasSuffix(name, "]") {
		idx, _ = strconv.Atoi(name[i+1 : len(name)-1])
		name = name[:i]
	}
	switch name {
	case "files":
		if idx < 0 || idx >= len(req.files) {
			return "files"
		}
		f := fmt.Sprintf("files[%d]", req.files[idx].index)
		switch rest {
		case "name":
			return f + ".path"
		case "":
			return f
		}
		return f + ".content"
	case "args":
		switch {
		case idx < 0:
			return "args"
		case idx == req.inputAt:
			return "input"
		}
		return fmt.Sprintf("args[%d]", idx+req.argsDropped)
	case "command", "env", "outputs", "":
		// What the adapter itself set: the whole request is too large
		// for a box, or the like.
		return ""
	}
	return loc
}
