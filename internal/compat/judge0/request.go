package judge0

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The native request (api.JobBody: a RunBody and a callback), as far as
// the adapter fills it.
type (
	nativeBody struct {
		Language string      `json:"language"`
		Files    []fileIn    `json:"files"`
		Main     string      `json:"main,omitempty"`
		Stdin    string      `json:"stdin,omitempty"`
		Args     []string    `json:"args,omitempty"`
		Limits   *limitsIn   `json:"limits,omitempty"`
		Cases    []caseIn    `json:"cases,omitempty"`
		Callback *callbackIn `json:"callback,omitempty"`
		// MergeOutput is redirect_stderr_to_stdout: one descriptor for
		// both streams, so the output is interleaved as written.
		MergeOutput bool `json:"merge_output,omitempty"`
	}
	fileIn struct {
		Name     string `json:"name"`
		Content  string `json:"content"`
		Encoding string `json:"encoding"`
	}
	limitsIn struct {
		WallTimeMS    *int64 `json:"wall_time_ms,omitempty"`
		CPUTimeMS     *int64 `json:"cpu_time_ms,omitempty"`
		MemoryBytes   *int64 `json:"memory_bytes,omitempty"`
		Processes     *int64 `json:"processes,omitempty"`
		FileSizeBytes *int64 `json:"file_size_bytes,omitempty"`
		OutputBytes   *int64 `json:"output_bytes,omitempty"`
	}
	caseIn struct {
		Stdin          string   `json:"stdin,omitempty"`
		Args           []string `json:"args,omitempty"`
		ExpectedOutput *string  `json:"expected_output,omitempty"`
	}
	callbackIn struct {
		URL    string `json:"url"`
		Format string `json:"format"`
	}
)

// submission is a decoded, validated Judge0 submission.
type submission struct {
	lang language
	body nativeBody
}

// fields reads a submission's JSON object field by field, so that each
// bad field gets Judge0's message on its own name rather than one
// decoding error for the whole body.
type fields struct {
	raw  map[string]json.RawMessage
	errs fieldErrors
}

func (f *fields) present(name string) bool {
	v, ok := f.raw[name]
	return ok && string(v) != "null"
}

// str is a string field; nil when absent or null.
func (f *fields) str(name string) *string {
	if !f.present(name) {
		return nil
	}
	var s string
	if json.Unmarshal(f.raw[name], &s) != nil {
		f.errs.add(name, "is invalid")
		return nil
	}
	return &s
}

// num is a number field, given as a JSON number or a numeric string (as
// Rails takes it); nil when absent, null or "".
func (f *fields) num(name string) *float64 {
	if !f.present(name) {
		return nil
	}
	var v float64
	if err := json.Unmarshal(f.raw[name], &v); err != nil {
		var s string
		if json.Unmarshal(f.raw[name], &s) != nil {
			f.errs.add(name, "is not a number")
			return nil
		}
		if strings.TrimSpace(s) == "" {
			return nil
		}
		if v, err = strconv.ParseFloat(strings.TrimSpace(s), 64); err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			f.errs.add(name, "is not a number")
			return nil
		}
	}
	return &v
}

// boolean is a boolean field (true, false, or their strings).
func (f *fields) boolean(name string) bool {
	if !f.present(name) {
		return false
	}
	var b bool
	if json.Unmarshal(f.raw[name], &b) == nil {
		return b
	}
	var s string
	if json.Unmarshal(f.raw[name], &s) == nil {
		switch s {
		case "true", "1":
			return true
		case "false", "0", "":
			return false
		}
	}
	f.errs.add(name, "is invalid")
	return false
}

// bounded checks a number field against (0, max] and returns it.
func (f *fields) bounded(name string, max float64, integer bool) *float64 {
	v := f.num(name)
	switch {
	case v == nil:
		return nil
	case integer && *v != math.Trunc(*v):
		f.errs.add(name, "must be an integer")
	case *v <= 0:
		f.errs.add(name, "must be greater than 0")
	case *v > max:
		f.errs.add(name, fmt.Sprintf("must be less than or equal to %s", strconv.FormatFloat(max, 'f', -1, 64)))
	default:
		return v
	}
	return nil
}

// decode64 decodes a text field when the request is base64_encoded;
// Judge0 answers a bad one 400.
func decode64(name string, s *string, b64 bool) (*string, error) {
	if s == nil || !b64 {
		return s, nil
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(*s))
	if err != nil {
		// Ruby's Base64.decode64 also takes the unpadded and the
		// line-wrapped forms.
		if b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(strings.Join(strings.Fields(*s), ""), "=")); err != nil {
			return nil, badRequest("%s is not valid base64", name)
		}
	}
	out := string(b)
	return &out, nil
}

// parseSubmission validates one Judge0 submission against the native
// server's limits (in) and environments (envs) and builds its native
// request.
func parseSubmission(raw json.RawMessage, b64, wait bool, in *info, envs map[int]environment) (*submission, error) {
	f := &fields{errs: fieldErrors{}}
	if err := json.Unmarshal(raw, &f.raw); err != nil || f.raw == nil {
		return nil, badRequest("the submission is not a JSON object")
	}
	s := &submission{}

	lid := f.num("language_id")
	var e environment
	switch {
	case lid == nil && !f.present("language_id"):
		f.errs.add("language_id", "can't be blank")
	case lid == nil:
	default:
		l, known := languageByID(int(*lid))
		env, avail := envs[int(*lid)]
		if !known || !avail || *lid != math.Trunc(*lid) {
			f.errs.add("language_id", fmt.Sprintf("language with id %s doesn't exist", strconv.FormatFloat(*lid, 'f', -1, 64)))
		}
		s.lang, e = l, env
	}

	src, err := decode64("source_code", f.str("source_code"), b64)
	if err != nil {
		return nil, err
	}
	if src == nil || *src == "" {
		f.errs.add("source_code", "can't be blank")
	}
	stdin, err := decode64("stdin", f.str("stdin"), b64)
	if err != nil {
		return nil, err
	}
	expected, err := decode64("expected_output", f.str("expected_output"), b64)
	if err != nil {
		return nil, err
	}
	// The native stdin and expected_output are JSON text.
	if stdin != nil && !utf8.ValidString(*stdin) {
		f.errs.add("stdin", "must be valid UTF-8 (runbox takes stdin as text)")
	}
	if expected != nil && !utf8.ValidString(*expected) {
		f.errs.add("expected_output", "must be valid UTF-8 (runbox compares text)")
	}

	if co := f.str("compiler_options"); co != nil && strings.TrimSpace(*co) != "" {
		f.errs.add("compiler_options", "are not supported: runbox compiles with its environment's own options")
	}
	var args []string
	if cla := f.str("command_line_arguments"); cla != nil {
		if utf8.RuneCountInString(*cla) > maxTextFieldChars {
			f.errs.add("command_line_arguments", fmt.Sprintf("is too long (maximum is %d characters)", maxTextFieldChars))
		} else if args, err = split(*cla); err != nil {
			f.errs.add("command_line_arguments", err.Error())
		}
	}

	m := in.Maxima
	lim := &limitsIn{}
	if v := f.bounded("cpu_time_limit", seconds(m.CPUTimeMS), false); v != nil {
		lim.CPUTimeMS = ms(*v)
	}
	f.bounded("cpu_extra_time", maxCPUExtraTime, false)
	if v := f.bounded("wall_time_limit", seconds(m.WallTimeMS), false); v != nil {
		lim.WallTimeMS = ms(*v)
	}
	if v := f.bounded("memory_limit", float64(m.MemoryBytes/1024), false); v != nil {
		lim.MemoryBytes = kb(*v)
	}
	f.bounded("stack_limit", maxStackLimit, false)
	if v := f.bounded("max_processes_and_or_threads", float64(m.Processes), true); v != nil {
		n := int64(*v)
		lim.Processes = &n
	}
	if v := f.bounded("max_file_size", float64(m.FileSizeBytes/1024), false); v != nil {
		// Judge0 writes stdout to a file, so max_file_size caps it too.
		lim.FileSizeBytes = kb(*v)
		out := min(*lim.FileSizeBytes, m.OutputBytes)
		lim.OutputBytes = &out
	}
	f.bounded("number_of_runs", maxNumberOfRuns, true)
	if f.boolean("enable_network") {
		f.errs.add("enable_network", "cannot be true: runbox gives programs no network")
	}
	for _, name := range []string{"enable_per_process_and_thread_time_limit", "enable_per_process_and_thread_memory_limit"} {
		if f.boolean(name) {
			f.errs.add(name, "cannot be true: runbox's limits are the whole box's")
		}
	}
	s.body.MergeOutput = f.boolean("redirect_stderr_to_stdout")
	cb := f.str("callback_url")
	if cb != nil && *cb != "" && wait {
		f.errs.add("callback_url", "runbox calls back only for submissions made with wait=false")
	}

	var extra []fileIn
	if af := f.str("additional_files"); af != nil && *af != "" && e.Source != "" {
		var msg string
		extra, msg = unzip(*af, in.MaxFiles-1, in.MaxFilesBytes, e.Source)
		if msg != "" {
			f.errs.add("additional_files", msg)
		}
	}
	if len(f.errs) > 0 {
		return nil, f.errs
	}

	b := &s.body
	b.Language, b.Main = e.Name, e.Source
	b.Files = append([]fileIn{{Name: e.Source, Content: base64.StdEncoding.EncodeToString([]byte(*src)), Encoding: "base64"}}, extra...)
	if *lim != (limitsIn{}) {
		b.Limits = lim
	}
	switch {
	case expected != nil:
		// One case: the native API compares as Judge0 does (trailing
		// whitespace of each line ignored) and gives the verdict.
		b.Cases = []caseIn{{Stdin: deref(stdin), Args: args, ExpectedOutput: expected}}
	default:
		b.Stdin, b.Args = deref(stdin), args
	}
	if cb != nil && *cb != "" {
		b.Callback = &callbackIn{URL: *cb, Format: "judge0"}
	}
	return s, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// ms is seconds as whole milliseconds, at least 1.
func ms(s float64) *int64 {
	v := max(int64(math.Round(s*1000)), 1)
	return &v
}

// kb is kilobytes as bytes.
func kb(k float64) *int64 {
	v := max(int64(k*1024), 1)
	return &v
}
