package judge0

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/runbox-dev/runbox/internal/compat"
)

// runResult is what the adapter reads of a native result (result.Result)
// and of a case's (with its verdict).
type runResult struct {
	Status       string  `json:"status"`
	ExitCode     int     `json:"exit_code"`
	Signal       *string `json:"signal"`
	Message      string  `json:"message"`
	Stdout       string  `json:"stdout"`
	Stderr       string  `json:"stderr"`
	StdoutBase64 string  `json:"stdout_base64"`
	StderrBase64 string  `json:"stderr_base64"`
	WallTimeMS   int64   `json:"wall_time_ms"`
	CPUTimeMS    int64   `json:"cpu_time_ms"`
	MemoryBytes  int64   `json:"memory_bytes"`
	Verdict      string  `json:"verdict"`
}

// runResponse is what the adapter reads of the native api.RunResponse.
type runResponse struct {
	Language string       `json:"language"`
	Version  string       `json:"version"`
	Compile  *runResult   `json:"compile"`
	Run      *runResult   `json:"run"`
	Cases    []*runResult `json:"cases"`
}

// jobView is what the adapter reads of a native GET /v1/jobs/{id}.
type jobView struct {
	ID         string       `json:"id"`
	Status     string       `json:"status"`
	CreatedAt  time.Time    `json:"created_at"`
	FinishedAt time.Time    `json:"finished_at"`
	Error      string       `json:"error"`
	Result     *runResponse `json:"result"`
}

// output is a submission as Judge0 answers it, before fields selects
// and base64 encodes. Text fields hold exact bytes; nil is JSON null.
type output struct {
	token       string
	status      status
	stdout      []byte
	stderr      []byte
	compile     []byte
	message     []byte
	exitCode    *int
	exitSignal  *int
	time        *string
	wallTime    *string
	memory      *int64
	createdAt   time.Time
	finishedAt  time.Time
	lang        *language
	langVersion string
}

// fromJob is a native job as a Judge0 submission.
func fromJob(j *jobView) *output {
	o := &output{token: j.ID, createdAt: j.CreatedAt, finishedAt: j.FinishedAt}
	switch j.Status {
	case "queued":
		o.status = statusOf(stQueue)
	case "running":
		o.status = statusOf(stProcessing)
	case "done":
		if j.Result == nil {
			o.status, o.message = statusOf(stInternalError), []byte("runbox kept no result for this job")
			break
		}
		fromRun(o, j.Result)
	case "cancelled":
		o.status, o.message = statusOf(stInternalError), []byte("the submission was cancelled")
	default: // failed
		o.status = statusOf(stInternalError)
		o.message = []byte(strings.TrimSpace("runbox could not run the submission. " + j.Error))
	}
	return o
}

// fromRun fills o from a native run answer (with
// redirect_stderr_to_stdout, the native run merged the streams at the
// descriptor: its stderr is empty).
func fromRun(o *output, res *runResponse) {
	if l, ok := languageByNative(res.Language); ok {
		o.lang, o.langVersion = &l, res.Version
	}
	if c := res.Compile; c != nil {
		if b := append(text(c.Stdout, c.StdoutBase64), text(c.Stderr, c.StderrBase64)...); len(b) > 0 {
			o.compile = b
		}
		if c.Status != "ok" {
			if c.Status == "internal_error" {
				o.status, o.message = statusOf(stInternalError), nonEmpty(c.Message)
				return
			}
			// Judge0 reports a compiler that ran out of time as a
			// compilation error too.
			o.status, o.message = statusOf(stCompilationError), nonEmpty(c.Message)
			code := c.ExitCode
			o.exitCode = &code
			return
		}
	}
	r := res.Run
	if len(res.Cases) > 0 {
		r = res.Cases[0]
	}
	if r == nil {
		o.status, o.message = statusOf(stInternalError), []byte("runbox's answer has no run")
		return
	}
	o.status = statusOf(statusID(r))
	o.stdout, o.stderr = text(r.Stdout, r.StdoutBase64), text(r.Stderr, r.StderrBase64)
	o.message = nonEmpty(r.Message)
	if r.Signal != nil {
		n := compat.SignalNumber(*r.Signal)
		o.exitSignal = &n
	} else if r.Status != "internal_error" && r.ExitCode >= 0 {
		code := r.ExitCode
		o.exitCode = &code
	}
	t, wt := secondsText(r.CPUTimeMS), secondsText(r.WallTimeMS)
	mem := r.MemoryBytes / 1024
	o.time, o.wallTime, o.memory = &t, &wt, &mem
}

// statusID is Judge0's status for a native result (isolate_job.rb's
// determine_status): the verdict for a run that ended well; a signal by
// name; a limit by what Judge0 reports for it.
func statusID(r *runResult) int {
	switch r.Status {
	case "ok":
		if r.Verdict == "wrong_answer" {
			return stWrongAnswer
		}
		return stAccepted
	case "time_limit":
		return stTimeLimit
	case "runtime_error":
		return stNZEC
	case "signaled":
		if r.Signal != nil {
			switch *r.Signal {
			case "SIGSEGV":
				return stSIGSEGV
			case "SIGXFSZ":
				return stSIGXFSZ
			case "SIGFPE":
				return stSIGFPE
			case "SIGABRT":
				return stSIGABRT
			}
		}
		return stOther
	case "memory_limit", "output_limit":
		// Judge0 (isolate) sees a program killed at its memory limit as
		// SIGKILL, "Runtime Error (Other)"; runbox's output bound has no
		// Judge0 counterpart closer than that.
		return stOther
	}
	return stInternalError
}

// text is a native output's exact bytes: its _base64 twin when it was
// not valid UTF-8.
func text(s, b64 string) []byte {
	if b64 != "" {
		if b, err := base64.StdEncoding.DecodeString(b64); err == nil {
			return b
		}
	}
	if s == "" {
		return nil
	}
	return []byte(s)
}

func nonEmpty(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

// secondsText is Judge0's decimal seconds ("0.012").
func secondsText(ms int64) string { return strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64) }

// allFields are the fields runbox can answer, in Judge0's order; the
// first eight are Judge0's default.
var (
	defaultFields = []string{"token", "stdout", "time", "memory", "stderr", "compile_output", "message", "status"}
	allFields     = []string{"token", "stdout", "stderr", "compile_output", "message", "exit_code", "exit_signal",
		"status", "status_id", "created_at", "finished_at", "time", "wall_time", "memory", "language", "language_id"}
)

// parseFields reads ?fields= (a comma list or *).
func parseFields(q string) ([]string, error) {
	switch strings.TrimSpace(q) {
	case "":
		return defaultFields, nil
	case "*":
		return allFields, nil
	}
	var out, bad []string
	for _, f := range strings.Split(q, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(allFields, f) {
			bad = append(bad, f)
			continue
		}
		out = append(out, f)
	}
	if len(bad) > 0 {
		return nil, badRequest("invalid fields: [%s]", strings.Join(bad, ", "))
	}
	return out, nil
}

// encode is o as Judge0's JSON object with the fields asked for. Text is
// base64 when b64; otherwise text that is not UTF-8 cannot be answered,
// as in Judge0.
func (o *output) encode(fields []string, b64 bool) (map[string]any, error) {
	m := make(map[string]any, len(fields))
	txt := func(b []byte) (any, error) {
		switch {
		case b == nil:
			return nil, nil
		case b64:
			return base64.StdEncoding.EncodeToString(b), nil
		case !utf8.Valid(b):
			return nil, badRequest("some attributes for this submission cannot be converted to UTF-8, use base64_encoded=true query parameter")
		}
		return string(b), nil
	}
	for _, f := range fields {
		var (
			v   any
			err error
		)
		switch f {
		case "token":
			v = nilIfEmpty(o.token)
		case "stdout":
			v, err = txt(o.stdout)
		case "stderr":
			v, err = txt(o.stderr)
		case "compile_output":
			v, err = txt(o.compile)
		case "message":
			v, err = txt(o.message)
		case "exit_code":
			v = o.exitCode
		case "exit_signal":
			v = o.exitSignal
		case "status":
			v = o.status
		case "status_id":
			v = o.status.ID
		case "created_at":
			v = timeOrNil(o.createdAt)
		case "finished_at":
			v = timeOrNil(o.finishedAt)
		case "time":
			v = o.time
		case "wall_time":
			v = o.wallTime
		case "memory":
			v = o.memory
		case "language":
			if o.lang != nil {
				v = languageJSON{ID: o.lang.ID, Name: o.lang.name(o.langVersion)}
			}
		case "language_id":
			if o.lang != nil {
				v = o.lang.ID
			}
		}
		if err != nil {
			return nil, err
		}
		m[f] = v
	}
	return m, nil
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func timeOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// CallbackBody is the body of a Judge0 callback, made from the native job
// (as GET /v1/jobs/{id} shows it): the finished submission with Judge0's
// default fields, its text in base64, as Judge0 PUTs it to callback_url.
func CallbackBody(job []byte) ([]byte, error) {
	var j jobView
	if err := json.Unmarshal(job, &j); err != nil {
		return nil, err
	}
	m, err := fromJob(&j).encode(defaultFields, true)
	if err != nil {
		return nil, err
	}
	return json.Marshal(m)
}
