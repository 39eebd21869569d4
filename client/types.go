package client

import (
	"encoding/base64"
	"time"
)

// Statuses of a Result.
const (
	StatusOK            = "ok"
	StatusRuntimeError  = "runtime_error"
	StatusSignaled      = "signaled"
	StatusTimeLimit     = "time_limit"
	StatusMemoryLimit   = "memory_limit"
	StatusOutputLimit   = "output_limit"
	StatusInternalError = "internal_error"
)

// Verdicts of a test case (besides a run's status when it did not end ok).
const (
	VerdictAccepted    = "accepted"
	VerdictWrongAnswer = "wrong_answer"
)

// File is one file of a request.
type File struct {
	Name     string `json:"name"`               // relative to the workspace; subdirectories allowed
	Content  string `json:"content"`            // in Encoding
	Encoding string `json:"encoding,omitempty"` // "utf8" (default) or "base64"
}

// BinaryFile is a File holding b exactly (base64 on the wire).
func BinaryFile(name string, b []byte) File {
	return File{Name: name, Content: base64.StdEncoding.EncodeToString(b), Encoding: "base64"}
}

// Limits are a box's limits. A zero field takes the server's default in a
// request (the server refuses zero itself); in an answer every field is set.
type Limits struct {
	WallTimeMS    int64 `json:"wall_time_ms,omitempty"`
	CPUTimeMS     int64 `json:"cpu_time_ms,omitempty"`
	MemoryBytes   int64 `json:"memory_bytes,omitempty"` // RAM and tmpfs pages, no swap
	Processes     int64 `json:"processes,omitempty"`
	FileSizeBytes int64 `json:"file_size_bytes,omitempty"`
	OpenFiles     int64 `json:"open_files,omitempty"`
	OutputBytes   int64 `json:"output_bytes,omitempty"` // of stdout and of stderr each
	DiskBytes     int64 `json:"disk_bytes,omitempty"`   // of /box and of /tmp each
}

// Case is one test case of a run.
type Case struct {
	Stdin          string   `json:"stdin,omitempty"`
	Args           []string `json:"args,omitempty"`
	ExpectedOutput *string  `json:"expected_output,omitempty"`
}

// RunRequest is the body of POST /v1/run (and of the run stream, a job
// and a session's run). Exactly one of Language and Command.
type RunRequest struct {
	Language      string            `json:"language,omitempty"`
	Command       []string          `json:"command,omitempty"` // an argv, run with no environment
	Files         []File            `json:"files,omitempty"`   // the first is the main file unless Main names one
	Main          string            `json:"main,omitempty"`
	Stdin         string            `json:"stdin,omitempty"`
	Args          []string          `json:"args,omitempty"`
	Env           map[string]string `json:"env,omitempty"`
	Limits        *Limits           `json:"limits,omitempty"`
	CompileLimits *Limits           `json:"compile_limits,omitempty"`
	Outputs       []string          `json:"outputs,omitempty"` // patterns of workspace files to return
	Cases         []Case            `json:"cases,omitempty"`
}

// Result is one run's outcome: the object `runbox run --json` prints.
type Result struct {
	Status          string  `json:"status"` // StatusOK, StatusRuntimeError, …
	ExitCode        int     `json:"exit_code"`
	Signal          *string `json:"signal"` // e.g. "SIGSEGV"
	Message         string  `json:"message"`
	Stdout          string  `json:"stdout"` // invalid UTF-8 replaced by U+FFFD; StdoutBytes has the exact bytes
	Stderr          string  `json:"stderr"`
	StdoutBase64    string  `json:"stdout_base64,omitempty"`
	StderrBase64    string  `json:"stderr_base64,omitempty"`
	StdoutTruncated bool    `json:"stdout_truncated"`
	StderrTruncated bool    `json:"stderr_truncated"`
	WallTimeMS      int64   `json:"wall_time_ms"`
	CPUTimeMS       int64   `json:"cpu_time_ms"`
	MemoryBytes     int64   `json:"memory_bytes"`
}

// StdoutBytes is the program's exact stdout.
func (r *Result) StdoutBytes() []byte { return exact(r.Stdout, r.StdoutBase64) }

// StderrBytes is the program's exact stderr.
func (r *Result) StderrBytes() []byte { return exact(r.Stderr, r.StderrBase64) }

func exact(text, b64 string) []byte {
	if b64 != "" {
		if b, err := base64.StdEncoding.DecodeString(b64); err == nil {
			return b
		}
	}
	return []byte(text)
}

// CaseResult is a test case's result.
type CaseResult struct {
	Result
	Verdict string `json:"verdict"` // VerdictAccepted, VerdictWrongAnswer, or the run's status
}

// OutputFile is a workspace file returned by a run.
type OutputFile struct {
	Name       string `json:"name"`
	NameBase64 string `json:"name_base64,omitempty"` // the exact name, when it is not valid UTF-8
	Size       int    `json:"size"`
	Content    []byte `json:"content"`
}

// RunResponse is the answer of a run.
type RunResponse struct {
	Language       string       `json:"language"`
	Version        string       `json:"version"`
	Cached         bool         `json:"cached"`  // the compiled program came from the compile cache
	Compile        *Result      `json:"compile"` // nil for an interpreted language
	Run            *Result      `json:"run"`     // nil after a failed compile, or with cases
	Cases          []CaseResult `json:"cases"`
	Files          []OutputFile `json:"files"`
	FilesTruncated bool         `json:"files_truncated"`
}

// Environment describes one language of the server.
type Environment struct {
	Name      string   `json:"name"`
	Version   string   `json:"version"`
	Aliases   []string `json:"aliases"`
	Compiled  bool     `json:"compiled"`
	Available bool     `json:"available"`
	Source    string   `json:"source"` // the main file's default name
}

// Info is the server's version, limits and capacity.
type Info struct {
	Version          string `json:"version"`
	CgroupVersion    string `json:"cgroup_version"`
	Defaults         Limits `json:"defaults"`
	Maxima           Limits `json:"maxima"`
	MaxBoxes         int    `json:"max_boxes"`
	QueueLength      int    `json:"queue_length"`
	MaxBodyBytes     int64  `json:"max_body_bytes"`
	MaxFiles         int    `json:"max_files"`
	MaxFilesBytes    int64  `json:"max_files_bytes"`
	MaxCases         int    `json:"max_cases"`
	MaxResponseBytes int64  `json:"max_response_bytes"`
	CompileCacheMB   int64  `json:"compile_cache_mb"`
}

// SessionRequest is the body of POST /v1/sessions; every field is optional.
type SessionRequest struct {
	Language      string            `json:"language,omitempty"`
	Env           map[string]string `json:"env,omitempty"`
	Cwd           string            `json:"cwd,omitempty"`
	Files         []File            `json:"files,omitempty"`
	Limits        *Limits           `json:"limits,omitempty"`
	IdleTimeoutMS int64             `json:"idle_timeout_ms,omitempty"`
	MaxLifetimeMS int64             `json:"max_lifetime_ms,omitempty"`
}

// SessionUpdate is the body of PATCH /v1/sessions/{id}.
type SessionUpdate struct {
	Env           map[string]string `json:"env,omitempty"` // added or replaced
	UnsetEnv      []string          `json:"unset_env,omitempty"`
	Cwd           *string           `json:"cwd,omitempty"`
	IdleTimeoutMS int64             `json:"idle_timeout_ms,omitempty"`
}

// Session describes a session.
type Session struct {
	ID              string            `json:"id"`
	Language        string            `json:"language"`
	CreatedAt       time.Time         `json:"created_at"`
	LastUsedAt      time.Time         `json:"last_used_at"`
	ExpiresAt       time.Time         `json:"expires_at"`
	IdleTimeoutMS   int64             `json:"idle_timeout_ms"`
	MaxLifetimeMS   int64             `json:"max_lifetime_ms"`
	Env             map[string]string `json:"env"`
	Cwd             string            `json:"cwd"`
	Limits          Limits            `json:"limits"`
	RunningCommands int               `json:"running_commands"`
	URL             string            `json:"url"`
}

// CommandLimits are the limits a session's command sets for itself.
type CommandLimits struct {
	WallTimeMS  int64 `json:"wall_time_ms,omitempty"`
	CPUTimeMS   int64 `json:"cpu_time_ms,omitempty"`
	OutputBytes int64 `json:"output_bytes,omitempty"`
	OpenFiles   int64 `json:"open_files,omitempty"`
}

// CommandRequest is a command to run in a session: exactly one of Command
// (an argv) and Shell (run by /bin/sh -c).
type CommandRequest struct {
	Command []string          `json:"command,omitempty"`
	Shell   string            `json:"shell,omitempty"`
	Stdin   string            `json:"stdin,omitempty"` // the whole input (not on a socket: send it there)
	Env     map[string]string `json:"env,omitempty"`
	Cwd     string            `json:"cwd,omitempty"`
	Limits  *CommandLimits    `json:"limits,omitempty"`
}

// CommandStarted is the answer for a background command.
type CommandStarted struct {
	CommandID string `json:"command_id"`
	URL       string `json:"url"`
}

// Command describes a command of a session.
type Command struct {
	ID         string     `json:"id"`
	Command    []string   `json:"command"`
	Status     string     `json:"status"` // "running" or "done"
	Background bool       `json:"background"`
	PTY        bool       `json:"pty"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Stdout     string     `json:"stdout,omitempty"` // so far, while it runs
	Stderr     string     `json:"stderr,omitempty"`
	Result     *Result    `json:"result"` // when done
}

// FileEntry is one entry of a session's directory.
type FileEntry struct {
	Name       string    `json:"name"`
	NameBase64 string    `json:"name_base64,omitempty"`
	Type       string    `json:"type"` // file, dir, symlink, fifo, socket, device
	Size       int64     `json:"size"`
	Mode       string    `json:"mode"` // permission bits, octal
	ModTime    time.Time `json:"mtime"`
}

// FileList is a session's directory.
type FileList struct {
	Path      string      `json:"path"`
	Entries   []FileEntry `json:"entries"`
	Truncated bool        `json:"truncated"`
}
