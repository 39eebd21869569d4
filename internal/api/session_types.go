package api

import (
	"time"

	"github.com/runbox-dev/runbox/internal/result"
)

// SessionBody is the body of POST /v1/sessions.
type SessionBody struct {
	Language      string            `json:"language,omitempty" maxLength:"32" doc:"An environment's name or alias: its environment variables and default limits, and the default language of POST /v1/sessions/{id}/run."`
	Env           map[string]string `json:"env,omitempty" maxProperties:"128" doc:"Environment variables of every command."`
	Cwd           string            `json:"cwd,omitempty" maxLength:"4096" doc:"Default working directory of commands, below /box or /tmp (default /box)."`
	Files         []FileIn          `json:"files,omitempty" maxItems:"1024" doc:"Files placed in /box before the first command."`
	Limits        *LimitsIn         `json:"limits,omitempty" doc:"The session's limits. memory_bytes, processes, file_size_bytes and disk_bytes hold for the whole session; wall_time_ms, cpu_time_ms, output_bytes and open_files are each command's defaults."`
	IdleTimeoutMS *int64            `json:"idle_timeout_ms,omitempty" minimum:"1" doc:"The session ends after this long without a call and without a running command (default: the server's session_idle_timeout)."`
	MaxLifetimeMS *int64            `json:"max_lifetime_ms,omitempty" minimum:"1" doc:"The session ends this long after its creation, whatever runs (default: the server's session_lifetime)."`
}

// SessionPatch is the body of PATCH /v1/sessions/{id}.
type SessionPatch struct {
	Env           map[string]string `json:"env,omitempty" maxProperties:"128" doc:"Variables added to (or replaced in) the session's environment."`
	UnsetEnv      []string          `json:"unset_env,omitempty" maxItems:"128" doc:"Variables removed from the session's environment."`
	Cwd           *string           `json:"cwd,omitempty" maxLength:"4096" doc:"New default working directory."`
	IdleTimeoutMS *int64            `json:"idle_timeout_ms,omitempty" minimum:"1"`
}

// SessionOut describes a session.
type SessionOut struct {
	ID              string            `json:"id" doc:"128 random bits; whoever knows it controls the session."`
	Owner           string            `json:"owner" doc:"The name of the API key that made it (empty on a server without keys)."`
	Language        string            `json:"language"`
	CreatedAt       time.Time         `json:"created_at"`
	LastUsedAt      time.Time         `json:"last_used_at"`
	ExpiresAt       time.Time         `json:"expires_at" doc:"When the session ends unless it is used again (idle timeout or maximum lifetime)."`
	IdleTimeoutMS   int64             `json:"idle_timeout_ms"`
	MaxLifetimeMS   int64             `json:"max_lifetime_ms"`
	Env             map[string]string `json:"env"`
	Cwd             string            `json:"cwd"`
	Limits          LimitsOut         `json:"limits"`
	RunningCommands int               `json:"running_commands"`
	URL             string            `json:"url"`
}

// SessionList is the body of GET /v1/sessions.
type SessionList struct {
	Sessions []SessionOut `json:"sessions"`
}

// CommandLimitsIn are the limits a command sets for itself.
type CommandLimitsIn struct {
	WallTimeMS  *int64 `json:"wall_time_ms,omitempty" minimum:"1"`
	CPUTimeMS   *int64 `json:"cpu_time_ms,omitempty" minimum:"1" doc:"CPU time of the command and everything it started."`
	OutputBytes *int64 `json:"output_bytes,omitempty" minimum:"1"`
	OpenFiles   *int64 `json:"open_files,omitempty" minimum:"1"`
}

// PTYIn asks for a pseudo-terminal.
type PTYIn struct {
	Rows int `json:"rows" minimum:"1" maximum:"1000"`
	Cols int `json:"cols" minimum:"1" maximum:"1000"`
}

// CommandBody is the body of POST /v1/sessions/{id}/commands.
type CommandBody struct {
	Command    []string          `json:"command,omitempty" maxItems:"64" doc:"An argv. Exactly one of command and shell."`
	Shell      string            `json:"shell,omitempty" maxLength:"131072" doc:"A shell string, run by /bin/sh -c."`
	Stdin      string            `json:"stdin,omitempty" doc:"The command's whole standard input."`
	Env        map[string]string `json:"env,omitempty" maxProperties:"128" doc:"Added to the session's environment."`
	Cwd        string            `json:"cwd,omitempty" maxLength:"4096"`
	Limits     *CommandLimitsIn  `json:"limits,omitempty"`
	Background bool              `json:"background,omitempty" doc:"Answer 202 with the command's id at once; the command runs until its end, a limit, a signal or the session's end."`
	// As RunBody's. A command with a terminal (attach's pty) is one stream
	// already: session.CommandSpec ignores the field there.
	MergeOutput bool `json:"merge_output,omitempty" doc:"The command's stderr is the same descriptor as its stdout: the output arrives interleaved as written, in stdout; stderr is empty."`
}

// CommandOut describes a command.
type CommandOut struct {
	ID         string         `json:"id"`
	Command    []string       `json:"command"`
	Status     string         `json:"status" enum:"running,done"`
	Background bool           `json:"background"`
	PTY        bool           `json:"pty"`
	StartedAt  time.Time      `json:"started_at"`
	FinishedAt *time.Time     `json:"finished_at"`
	Stdout     string         `json:"stdout,omitempty" doc:"Output so far, while it runs."`
	Stderr     string         `json:"stderr,omitempty"`
	Result     *result.Result `json:"result" doc:"When done: the same object as runbox run --json."`
}

// CommandList is the body of GET /v1/sessions/{id}/commands.
type CommandList struct {
	Commands []CommandOut `json:"commands"`
}

// CommandStarted is the body of a 202 for a background command.
type CommandStarted struct {
	CommandID string `json:"command_id"`
	URL       string `json:"url"`
}

// SignalBody is the body of POST …/commands/{cid}/signal.
type SignalBody struct {
	Signal string `json:"signal" enum:"SIGINT,SIGTERM,SIGKILL,SIGHUP,SIGQUIT,SIGUSR1,SIGUSR2,SIGSTOP,SIGCONT,SIGWINCH,SIGALRM" doc:"The signal, sent to the command's main process (SIGKILL: to every process of the command)."`
}

// FileEntry is one entry of a session directory.
type FileEntry struct {
	Name       string    `json:"name"`
	NameBase64 string    `json:"name_base64,omitempty" doc:"The exact bytes, when the name is not valid UTF-8."`
	Type       string    `json:"type" enum:"file,dir,symlink,fifo,socket,device"`
	Size       int64     `json:"size"`
	Mode       string    `json:"mode" doc:"Permission bits, octal."`
	ModTime    time.Time `json:"mtime"`
}

// FileList is the body of GET /v1/sessions/{id}/files.
type FileList struct {
	Path      string      `json:"path"`
	Entries   []FileEntry `json:"entries"`
	Truncated bool        `json:"truncated" doc:"The directory holds more entries than one listing returns."`
}
