package codebox

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"

	"github.com/runbox-dev/runbox/internal/compat"
)

// The native calls of a request: its session's body, each command's
// body, and the native API's refusals in Codebox's terms.

// sessionFile is a file of a native session (api.FileIn).
type sessionFile struct {
	Name    string `json:"name"`
	Content string `json:"content"`
}

// sessionBody is the native POST /v1/sessions body: the sources as
// files, one per name (a name given twice keeps its last content, as
// Codebox writes it twice).
func (p *project) sessionBody() map[string]any {
	var files []sessionFile
	at := map[string]int{}
	for _, s := range p.sources {
		name, _ := sourceName(s.key)
		if i, ok := at[name]; ok {
			files[i].Content = s.content
			continue
		}
		at[name] = len(files)
		files = append(files, sessionFile{Name: name, Content: s.content})
	}
	body := map[string]any{}
	if len(files) > 0 {
		body["files"] = files
	}
	return body
}

// sourceKey is the request's name of the session's i-th file.
func (p *project) sourceKey(i int) (string, bool) {
	seen := map[string]bool{}
	for _, s := range p.sources {
		name, _ := sourceName(s.key)
		if seen[name] {
			continue
		}
		seen[name] = true
		if i == 0 {
			return s.key, true
		}
		i--
	}
	return "", false
}

// run is a command ready to run.
type run struct {
	argv    []string
	stdin   *string
	timeout *float64
	nul     bool // an argument holds a NUL, which Codebox's Popen refuses
}

// argvs splits every command line as shlex does and replaces its first
// word through aliases.
func (p *project) argvs(aliases map[string]string) ([]run, error) {
	var runs []run
	for i, c := range p.commands {
		argv, err := compat.SplitWords(c.line)
		if err == nil && len(argv) == 0 {
			err = errors.New("the command is empty")
		}
		if err != nil {
			return nil, invalid(valueError(c.raw, err.Error(), "commands", i, "command"))
		}
		if a, ok := aliases[argv[0]]; ok {
			argv[0] = a
		}
		r := run{argv: argv, stdin: c.stdin, timeout: c.timeout}
		for _, a := range argv {
			r.nul = r.nul || strings.ContainsRune(a, 0)
		}
		if argv[0] == "" {
			return nil, invalid(valueError(c.raw, "the program's name is empty", "commands", i, "command"))
		}
		runs = append(runs, r)
	}
	return runs, nil
}

// body is the native POST /v1/sessions/{id}/commands body.
func (r *run) body() map[string]any {
	b := map[string]any{"command": r.argv}
	if r.stdin != nil && *r.stdin != "" {
		b["stdin"] = *r.stdin
	}
	if r.timeout != nil {
		ms := math.Ceil(*r.timeout * 1000)
		// A timeout of zero or less expires at once, as in Python.
		b["limits"] = map[string]any{"wall_time_ms": int64(max(1, min(ms, 1e15)))}
	}
	return b
}

// timeoutText is the timeout as Codebox prints it (Python's float).
func (r *run) timeoutText(in *info) string {
	if r.timeout != nil {
		return compat.PyFloat(*r.timeout)
	}
	return compat.PyFloat(float64(in.Defaults.WallTimeMS) / 1000)
}

// nativeError is the answer to a failed native call of this request
// (command: the command's index, -1 for the session): the request's
// fault (400, 422) is a 422 naming Codebox's field.
func (p *project) nativeError(ctx context.Context, hdr http.Header, err error, command int) error {
	var pr *compat.Problem
	if ctx.Err() != nil || !errors.As(err, &pr) || pr.Status != http.StatusUnprocessableEntity && pr.Status != http.StatusBadRequest {
		return failure(ctx, hdr, err)
	}
	loc, rule := "", pr.Detail
	if len(pr.Errors) > 0 {
		loc, rule = pr.Errors[0].Location, pr.Errors[0].Message
	}
	var where []any
	switch {
	case command < 0 && strings.HasPrefix(loc, "body.files["):
		var i int
		fmt.Sscanf(loc, "body.files[%d]", &i)
		if key, ok := p.sourceKey(i); ok {
			where = []any{"sources", key}
		} else {
			where = []any{"sources"}
		}
	case command < 0:
		where = []any{"sources"}
	case strings.HasPrefix(loc, "body.limits"):
		where = []any{"commands", command, "timeout"}
	case strings.HasPrefix(loc, "body.stdin"):
		where = []any{"commands", command, "stdin"}
	default:
		where = []any{"commands", command, "command"}
	}
	return invalid(valueError(null, rule, where...))
}
