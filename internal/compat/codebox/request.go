package codebox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

// detailItem is one of FastAPI's validation errors (pydantic 2's error,
// without its documentation url).
type detailItem struct {
	Type  string          `json:"type"`
	Loc   []any           `json:"loc"`
	Msg   string          `json:"msg"`
	Input json.RawMessage `json:"input"`
	Ctx   map[string]any  `json:"ctx,omitempty"`
}

func invalid(items ...detailItem) error {
	return &httpError{status: http.StatusUnprocessableEntity, detail: items}
}

// valueError is a validation error of runbox's own, as pydantic words a
// value error.
func valueError(input json.RawMessage, msg string, loc ...any) detailItem {
	return detailItem{Type: "value_error", Loc: append([]any{"body"}, loc...), Msg: "Value error, " + msg, Input: input}
}

var null = json.RawMessage("null")

// project is a checked POST /execute body (Codebox's ProjectCore).
type project struct {
	sources  []source
	commands []command
}

// source is one source file, in the request's order.
type source struct {
	key     string // as the request names it
	content string
}

// command is one of Codebox's commands.
type command struct {
	line    string
	raw     json.RawMessage // the command's object, for error inputs
	stdin   *string
	timeout *float64 // nil: null, the server's default
}

// parseProject decodes and checks a body as FastAPI and pydantic do for
// Codebox's ProjectCore: every error of the schema at once, in the
// model's field order.
func parseProject(contentType string, body []byte) (*project, error) {
	if len(body) == 0 {
		return nil, invalid(detailItem{Type: "missing", Loc: []any{"body"}, Msg: "Field required", Input: null})
	}
	if !isJSON(contentType) {
		// FastAPI validates the raw bytes, which are no object.
		in, _ := json.Marshal(string(body))
		return nil, invalid(detailItem{Type: "model_attributes_type", Loc: []any{"body"},
			Msg: "Input should be a valid dictionary or object to extract fields from", Input: in})
	}
	if err := checkJSON(body); err != nil {
		var se *json.SyntaxError
		pos := int64(len(body))
		if errors.As(err, &se) {
			pos = se.Offset
		}
		return nil, invalid(detailItem{Type: "json_invalid", Loc: []any{"body", pos}, Msg: "JSON decode error",
			Input: json.RawMessage("{}"), Ctx: map[string]any{"error": err.Error()}})
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil || top == nil {
		return nil, invalid(detailItem{Type: "model_attributes_type", Loc: []any{"body"},
			Msg: "Input should be a valid dictionary or object to extract fields from", Input: body})
	}
	p := &project{}
	var errs []detailItem
	if raw, ok := top["sources"]; !ok {
		errs = append(errs, detailItem{Type: "missing", Loc: []any{"body", "sources"}, Msg: "Field required", Input: body})
	} else if keys, err := objectKeys(raw); err != nil {
		errs = append(errs, detailItem{Type: "dict_type", Loc: []any{"body", "sources"}, Msg: "Input should be a valid dictionary", Input: raw})
	} else {
		var values map[string]json.RawMessage
		_ = json.Unmarshal(raw, &values)
		for _, k := range keys {
			var s string
			if json.Unmarshal(values[k], &s) != nil {
				errs = append(errs, stringType(values[k], "sources", k))
				continue
			}
			p.sources = append(p.sources, source{key: k, content: s})
		}
	}
	if raw, ok := top["commands"]; !ok {
		errs = append(errs, detailItem{Type: "missing", Loc: []any{"body", "commands"}, Msg: "Field required", Input: body})
	} else {
		var list []json.RawMessage
		if json.Unmarshal(raw, &list) != nil || list == nil {
			errs = append(errs, detailItem{Type: "list_type", Loc: []any{"body", "commands"}, Msg: "Input should be a valid list", Input: raw})
		}
		for i, item := range list {
			c, cerrs := parseCommand(i, item)
			errs = append(errs, cerrs...)
			p.commands = append(p.commands, c)
		}
	}
	if len(errs) > 0 {
		return nil, invalid(errs...)
	}
	if len(p.commands) > maxCommands {
		return nil, invalid(valueError(top["commands"], fmt.Sprintf("at most %d commands", maxCommands), "commands"))
	}
	return p, nil
}

// parseCommand checks one command (Codebox's Command).
func parseCommand(i int, item json.RawMessage) (command, []detailItem) {
	c := command{raw: item}
	var fields map[string]json.RawMessage
	if json.Unmarshal(item, &fields) != nil || fields == nil {
		return c, []detailItem{{Type: "model_attributes_type", Loc: []any{"body", "commands", i},
			Msg: "Input should be a valid dictionary or object to extract fields from", Input: item}}
	}
	var errs []detailItem
	if raw, ok := fields["command"]; !ok {
		errs = append(errs, detailItem{Type: "missing", Loc: []any{"body", "commands", i, "command"}, Msg: "Field required", Input: item})
	} else if json.Unmarshal(raw, &c.line) != nil || isNull(raw) {
		errs = append(errs, stringType(raw, "commands", i, "command"))
	}
	if raw, ok := fields["stdin"]; ok && !isNull(raw) {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			errs = append(errs, stringType(raw, "commands", i, "stdin"))
		}
		c.stdin = &s
	}
	t := defaultTimeout
	c.timeout = &t
	if raw, ok := fields["timeout"]; ok {
		var err *detailItem
		c.timeout, err = parseTimeout(raw, i)
		if err != nil {
			errs = append(errs, *err)
		}
	}
	return c, errs
}

// parseTimeout reads a timeout as pydantic's lax float: a number, a
// boolean, or a string holding a number; null is none. A timeout that is
// not finite is none too: it never expires.
func parseTimeout(raw json.RawMessage, i int) (*float64, *detailItem) {
	var v any
	_ = json.Unmarshal(raw, &v)
	var f float64
	switch t := v.(type) {
	case nil:
		return nil, nil
	case float64:
		f = t
	case bool:
		if t {
			f = 1
		}
	case string:
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSpace(t), 64); err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, &detailItem{Type: "float_parsing", Loc: []any{"body", "commands", i, "timeout"},
				Msg: "Input should be a valid number, unable to parse string as a number", Input: raw}
		}
	default:
		return nil, &detailItem{Type: "float_type", Loc: []any{"body", "commands", i, "timeout"}, Msg: "Input should be a valid number", Input: raw}
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, nil
	}
	return &f, nil
}

func stringType(raw json.RawMessage, loc ...any) detailItem {
	return detailItem{Type: "string_type", Loc: append([]any{"body"}, loc...), Msg: "Input should be a valid string", Input: raw}
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// isJSON says whether FastAPI reads a body of this content type as JSON:
// none, application/json, or application/*+json.
func isJSON(contentType string) bool {
	if contentType == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	sub, ok := strings.CutPrefix(mt, "application/")
	return ok && (sub == "json" || strings.HasSuffix(sub, "+json"))
}

// checkJSON checks that body is one JSON value.
func checkJSON(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		return err
	}
	if dec.More() {
		off := dec.InputOffset()
		return &json.SyntaxError{Offset: off}
	}
	return nil
}

// objectKeys are the keys of a JSON object in their order, each once (a
// repeated key keeps its first place, as a Python dict does).
func objectKeys(raw json.RawMessage) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not an object")
	}
	var keys []string
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, _ := t.(string)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// sourceName is a source's path in the workspace as Codebox resolves it
// (leading slashes dropped, then relative to the sandbox), and whether it
// stays inside.
func sourceName(key string) (string, bool) {
	name := path.Clean(strings.TrimLeft(key, "/"))
	return name, name != ".." && !strings.HasPrefix(name, "../")
}

// badSources are Codebox's answers to sources it cannot write: one
// entry per bad source, exit code -1, the reason as stderr.
func (p *project) badSources() []commandAnswer {
	var bad []commandAnswer
	for _, s := range p.sources {
		name, ok := sourceName(s.key)
		switch {
		case strings.ContainsRune(s.key, 0):
			bad = append(bad, commandAnswer{Stderr: "embedded null byte", ExitCode: -1})
		case !ok:
			bad = append(bad, commandAnswer{Stderr: "Invalid file path: " + path.Join(workspace, name), ExitCode: -1})
		case name == ".":
			bad = append(bad, commandAnswer{Stderr: fmt.Sprintf("[Errno 21] Is a directory: '%s'", workspace), ExitCode: -1})
		}
	}
	return bad
}
