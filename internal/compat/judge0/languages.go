package judge0

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/runbox-dev/runbox/internal/compat"
)

// language is one Judge0 language id runbox can serve, and the native
// environment that serves it. The ids are Judge0 CE's own, so that a
// client's hard-coded ids (71 for Python 3) keep working.
type language struct {
	ID     int
	Native string // the native environment's name
	Name   string // Judge0's name, %s the version
}

// languages are the ids served, in Judge0's order of ids.
var languages = []language{
	{46, "bash", "Bash (%s)"},
	{50, "c", "C (GCC %s)"},
	{54, "c++", "C++ (GCC %s)"},
	{60, "go", "Go (%s)"},
	{62, "java", "Java (OpenJDK %s)"},
	{63, "javascript", "JavaScript (Node.js %s)"},
	{71, "python", "Python (%s)"},
	{73, "rust", "Rust (%s)"},
	{85, "perl", "Perl (%s)"},
}

func languageByID(id int) (language, bool) {
	for _, l := range languages {
		if l.ID == id {
			return l, true
		}
	}
	return language{}, false
}

func languageByNative(name string) (language, bool) {
	for _, l := range languages {
		if l.Native == name {
			return l, true
		}
	}
	return language{}, false
}

// environment is what the adapter reads of a native environment.
type environment struct {
	Name      string `json:"name"`
	Version   string `json:"version"`
	Compiled  bool   `json:"compiled"`
	Available bool   `json:"available"`
	Source    string `json:"source"`
}

// dotted is the first run of dot-separated numbers in a version text:
// "3.11.2" in "Python 3.11.2", "12.2.0" in "gcc (Debian 12.2.0-14) 12.2.0",
// "1.26.8" in "go version go1.26.8 linux/amd64", "20.20.2" in "v20.20.2".
var dotted = regexp.MustCompile(`\d+(?:\.\d+)+`)

// name is Judge0's name of l when its environment has version text v.
func (l language) name(v string) string {
	if m := dotted.FindString(v); m != "" {
		v = m
	}
	return fmt.Sprintf(l.Name, strings.TrimSpace(v))
}

// environments are the native environments that serve a Judge0 id and
// are available, by Judge0 id. They are asked each time: environments are
// data the operator may reload.
func (h *handler) environments(ctx context.Context, hdr http.Header) (map[int]environment, error) {
	var envs []environment
	if _, err := h.n.Call(ctx, http.MethodGet, "/v1/environments", hdr, nil, &envs); err != nil {
		return nil, nativeError(ctx, err)
	}
	out := map[int]environment{}
	for _, e := range envs {
		if l, ok := languageByNative(e.Name); ok && e.Available {
			out[l.ID] = e
		}
	}
	return out, nil
}

type languageJSON struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

// languages answers GET /languages (and /languages/all: runbox has no
// archived languages).
func (h *handler) languages(w http.ResponseWriter, r *http.Request) error {
	envs, err := h.environments(r.Context(), compat.RequestHeader(w))
	if err != nil {
		return err
	}
	out := []languageJSON{}
	for _, l := range languages {
		if e, ok := envs[l.ID]; ok {
			out = append(out, languageJSON{ID: l.ID, Name: l.name(e.Version)})
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// languageDetail is Judge0's GET /languages/{id}.
type languageDetail struct {
	ID         int     `json:"id"`
	Name       string  `json:"name"`
	IsArchived bool    `json:"is_archived"`
	SourceFile string  `json:"source_file"`
	CompileCmd *string `json:"compile_cmd"`
	RunCmd     string  `json:"run_cmd"`
}

func (h *handler) language(w http.ResponseWriter, r *http.Request) error {
	id, ok := atoiID(r.PathValue("id"))
	l, known := languageByID(id)
	if !ok || !known {
		return &apiError{Status: http.StatusNotFound, Message: fmt.Sprintf("language with id %s doesn't exist", r.PathValue("id"))}
	}
	envs, err := h.environments(r.Context(), compat.RequestHeader(w))
	if err != nil {
		return err
	}
	e, ok := envs[id]
	if !ok {
		return &apiError{Status: http.StatusNotFound, Message: fmt.Sprintf("language with id %d doesn't exist", id)}
	}
	// The native API does not publish an environment's argv (it is the
	// operator's data file), so the commands are described, not quoted.
	d := languageDetail{ID: id, Name: l.name(e.Version), SourceFile: e.Source,
		RunCmd: fmt.Sprintf("runbox %s environment: runs %s", e.Name, e.Source)}
	if e.Compiled {
		c := fmt.Sprintf("runbox %s environment: compiles %s", e.Name, e.Source)
		d.CompileCmd = &c
		d.RunCmd = fmt.Sprintf("runbox %s environment: runs the compiled program", e.Name)
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// status is one of Judge0's submission statuses
// (app/enumerations/status.rb).
type status struct {
	ID          int    `json:"id"`
	Description string `json:"description"`
}

const (
	stQueue = iota + 1
	stProcessing
	stAccepted
	stWrongAnswer
	stTimeLimit
	stCompilationError
	stSIGSEGV
	stSIGXFSZ
	stSIGFPE
	stSIGABRT
	stNZEC
	stOther
	stInternalError
	stExecFormatError
)

var statuses = []status{
	{stQueue, "In Queue"},
	{stProcessing, "Processing"},
	{stAccepted, "Accepted"},
	{stWrongAnswer, "Wrong Answer"},
	{stTimeLimit, "Time Limit Exceeded"},
	{stCompilationError, "Compilation Error"},
	{stSIGSEGV, "Runtime Error (SIGSEGV)"},
	{stSIGXFSZ, "Runtime Error (SIGXFSZ)"},
	{stSIGFPE, "Runtime Error (SIGFPE)"},
	{stSIGABRT, "Runtime Error (SIGABRT)"},
	{stNZEC, "Runtime Error (NZEC)"},
	{stOther, "Runtime Error (Other)"},
	{stInternalError, "Internal Error"},
	{stExecFormatError, "Exec Format Error"},
}

func statusOf(id int) status { return statuses[id-1] }

func (h *handler) statuses(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, statuses)
	return nil
}
