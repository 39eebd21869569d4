// Package boxinit is the program that runs first inside a new box, as pid 1
// of its pid namespace and root of its user namespace. It builds the box's
// filesystem, drops every privilege, installs the seccomp filter, starts the
// user's program as an unprivileged user and reports how it ended; or, in a
// session box, serves commands and file operations until the session ends
// (serve_linux.go, fileops_linux.go).
//
// It imports only the standard library and golang.org/x/sys, and is built as
// its own small binary (cmd/runbox-init): every box pays its start-up time,
// and a Go binary that links the server's libraries starts several times
// slower (design.md §3). It never logs; it reports through its report pipe.
package boxinit

import (
	"encoding/json"
	"syscall"
)

// File descriptors the supervisor hands to init besides stdio.
const (
	// ControlFD carries two length-prefixed JSON messages (a 4-byte
	// little-endian length, then the JSON): the Config, sent as soon as
	// init starts, and — possibly much later, when a request takes this
	// warm box — the RunConfig, followed by a tar stream of the workspace's
	// initial files. The supervisor closes it after the stream.
	ControlFD = 3
	// ReportFD carries JSON lines from init: Report{Ready} once the box is
	// built and waits for its RunConfig, Report{Started} once the program
	// runs, then one final Report.
	ReportFD = 4
	// CollectFD carries, after the program has ended and the rest of the
	// box has been killed, a tar stream of the workspace files that
	// RunConfig.Collect asked for. It is closed without a stream when
	// nothing is asked.
	CollectFD = 5
)

// MaxConfig bounds one control message, as init reads it. The supervisor
// refuses a spec whose message would be larger before it takes a box (as
// the request's fault); its own bound on argv and environment (512 KiB)
// takes at most 683 KiB here, as base64 (see Exact).
const MaxConfig = 1 << 20

// MaxCollectPath bounds the path, relative to /box, of a collected file. A
// file with a longer path is left out and reported as truncated: a tar
// header grows with its name (a PAX record holds a long one), and the
// supervisor bounds the stream it reads by counting headers with names of
// at most this length.
const MaxCollectPath = 1024

// Config is everything init needs to build a box before it knows what will
// run in it. It is made by the supervisor (internal/jail) and travels over
// ControlFD.
type Config struct {
	Hostname string `json:"hostname"`
	// UID and GID of the program inside the box (never 0).
	UID int `json:"uid"`
	GID int `json:"gid"`

	// Binds are host paths made visible read-only, nosuid and nodev at Dst
	// (an absolute path inside the box). A symlink is recreated as a symlink.
	Binds []Bind `json:"binds"`
	// Generated files written into the box's read-only root (/etc/passwd…).
	Generated []GenFile `json:"generated"`
	// Devices made for this box by the spawner (null, zero, full, random,
	// urandom), bound into its /dev.
	Devices []string `json:"devices"`
}

// RunConfig is what one run needs on top of a built box.
type RunConfig struct {
	Argv Exact `json:"argv"`
	Env  Exact `json:"env"`
	Dir  Exact `json:"dir"` // the working directory inside the box, alone

	Workspace TmpfsSize `json:"workspace"` // /box
	Tmp       TmpfsSize `json:"tmp"`       // /tmp
	Shm       TmpfsSize `json:"shm"`       // /dev/shm

	Rlimits []Rlimit `json:"rlimits"`
	// Seccomp is the compiled filter (struct sock_filter array).
	Seccomp []byte `json:"seccomp"`
	// Collect, when set, names the workspace files to send back.
	Collect *Collect `json:"collect,omitempty"`
	// Session: no program of its own (Argv is empty); init serves
	// commands and file operations on CollectFD once the box is set up.
	Session bool `json:"session,omitempty"`
	// MergeOutput starts the program with its stderr on init's stdout
	// (descriptor 2 a copy of 1): both streams share one pipe, interleaved
	// as written, and init's own stderr reaches the supervisor empty.
	MergeOutput bool `json:"merge_output,omitempty"`
}

// Collect selects workspace files to return after the run, with bounds. A
// file is returned when its slash-separated path relative to /box matches
// one of Patterns (path.Match syntax; "**" alone matches every file).
// Only regular files are returned; symlinks, FIFOs, sockets and devices
// are skipped, never followed or opened.
type Collect struct {
	Patterns Exact `json:"patterns"`
	MaxFiles int   `json:"max_files"`
	MaxBytes int64 `json:"max_bytes"` // total content
	MaxDepth int   `json:"max_depth"` // directory levels below /box
	MaxNanos int64 `json:"max_ns"`    // time for the whole collection
}

// Bind is one read-only bind mount.
type Bind struct {
	Src      string `json:"src"`
	Dst      string `json:"dst"`
	Optional bool   `json:"optional"` // skip silently if Src does not exist
}

// GenFile is a generated file inside the box.
type GenFile struct {
	Path string `json:"path"`
	Data string `json:"data"`
	Mode uint32 `json:"mode"`
}

// TmpfsSize bounds a tmpfs.
type TmpfsSize struct {
	Bytes  int64 `json:"bytes"`
	Inodes int64 `json:"inodes"`
}

// Rlimit is one resource limit applied to the program.
type Rlimit struct {
	Resource int    `json:"resource"`
	Cur      uint64 `json:"cur"`
	Max      uint64 `json:"max"`
}

// Report is one line on ReportFD.
type Report struct {
	// Ready is set on the first line, once the box is built.
	Ready bool `json:"ready,omitempty"`
	// Started is set once the program is running.
	Started bool `json:"started,omitempty"`

	// Then either Error (init failed: a runbox fault), ExecError (the
	// program could not be started: missing or not executable), or the
	// program's end (Exited).
	Error     string `json:"error,omitempty"`
	ExecError string `json:"exec_error,omitempty"`
	// WorkspaceFull, with Error, says the workspace's initial files did
	// not fit in its size or inodes: the request's fault, not runbox's.
	WorkspaceFull bool `json:"workspace_full,omitempty"`
	Exited        bool `json:"exited,omitempty"`
	// A last line follows the program's end when files were asked for:
	// Collected, and whether anything that matched was left out, for
	// whatever reason (a bound, the deadline, a name too long, a file that
	// could not be opened or read).
	Collected        bool  `json:"collected,omitempty"`
	CollectTruncated bool  `json:"collect_truncated,omitempty"`
	ExitCode         int   `json:"exit_code"`
	Signal           int   `json:"signal,omitempty"`
	WallNanos        int64 `json:"wall_ns,omitempty"`
}

// Exact is a list of strings carried byte for byte. encoding/json replaces
// every byte that is not UTF-8 with U+FFFD, and names and arguments from a
// request must reach the box verbatim (two names could otherwise become
// one): each string travels as base64.
type Exact []string

// MarshalJSON encodes each string as base64.
func (e Exact) MarshalJSON() ([]byte, error) {
	b := make([][]byte, len(e))
	for i, s := range e {
		b[i] = []byte(s)
	}
	return json.Marshal(b)
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (e *Exact) UnmarshalJSON(data []byte) error {
	var b [][]byte
	if err := json.Unmarshal(data, &b); err != nil {
		return err
	}
	*e = make(Exact, len(b))
	for i := range b {
		(*e)[i] = string(b[i])
	}
	return nil
}

// A session box (RunConfig.Session) runs no program of its own: once built,
// init serves commands and file operations on CollectFD, which is then a
// SOCK_SEQPACKET socket (one message per packet, descriptors as
// SCM_RIGHTS), until the supervisor closes it or kills the box.
//
// ExecArg as argv[1] makes runbox-init the first stage of one command:
// forked by init as the box's user ahead of the command, it waits on
// descriptor 3 (a stream socket from init) until the supervisor has moved
// it into the command's own cgroup and the command arrives (ShimCommand,
// length-prefixed, with its stdin, stdout and stderr as SCM_RIGHTS); then
// it executes the command in place. Everything the command starts is
// forked inside that cgroup, so its CPU time and its kill cover them all.
const ExecArg = "exec"

// Session operations (SessionRequest.Op).
const (
	// OpFork forks a command's first stage, which waits. The reply has
	// Forked and its pidfd, or ExecError (the fork failed) or Error; once
	// it has ended, a second reply has Exited.
	OpFork = "fork"
	// OpStart gives a forked first stage (in its cgroup by now) its
	// command: Argv, Env, Dir, Rlimits, TTY, and descriptors stdin,
	// stdout, stderr (and with Notify a fourth). A command that cannot be
	// found is an ExecError reply.
	OpStart = "start"
	// OpAbort makes a forked first stage exit without executing.
	OpAbort = "abort"
	// OpStageBinary gives init, once, the runbox-init that first stages
	// execute: a sealed memfd that box ids may execute but not read (see
	// fork in serve_linux.go).
	OpStageBinary = "stage_binary"
	// OpRead sends a regular file's content (at most Max bytes) on the
	// request's descriptor, a pipe's write end.
	OpRead = "read"
	// OpWrite creates or replaces a regular file with exactly Max bytes
	// read from the request's descriptor, a pipe's read end; with Parents,
	// the missing directories of its path are made first.
	OpWrite = "write"
	// OpList sends a directory's entries as JSON lines (ListEntry) on the
	// request's descriptor, at most Max of them.
	OpList = "list"
	// OpRemove removes a file, or an empty directory.
	OpRemove = "remove"
)

// MaxSessionReply bounds one message from init on a session's channel.
const MaxSessionReply = 64 << 10

// SessionRequest is one message from the supervisor on a session's channel.
type SessionRequest struct {
	ID   uint64 `json:"id"`
	Op   string `json:"op"`
	Argv Exact  `json:"argv,omitempty"`
	Env  Exact  `json:"env,omitempty"`
	// Dir is the command's working directory; Path the file operation's
	// path (one element each): absolute below /box or /tmp, or relative
	// to /box.
	Dir  Exact  `json:"dir,omitempty"`
	Path Exact  `json:"path,omitempty"`
	Max  int64  `json:"max,omitempty"`
	Mode uint32 `json:"mode,omitempty"`
	// Parents makes the missing directories of an OpWrite's path.
	Parents bool `json:"parents,omitempty"`
	// Rlimits of a start are the command's own (RLIMIT_NOFILE, RLIMIT_CPU,
	// RLIMIT_NPROC): its first stage sets them on itself before it
	// executes (RLIMIT_NPROC then holds the command's forks, as in a
	// one-shot box).
	Rlimits []Rlimit `json:"rlimits,omitempty"`
	// TimeoutNanos bounds a file operation inside init.
	TimeoutNanos int64 `json:"timeout_ns,omitempty"`
	// TTY: a start's stdin is a terminal, which the first stage makes
	// its controlling terminal.
	TTY bool `json:"tty,omitempty"`
	// Notify: a start carries a fourth descriptor, a pipe's write end, on
	// which the first stage writes one byte just before it executes the
	// command (after its byte to init), so that the supervisor knows the
	// command runs while it runs.
	Notify bool `json:"notify,omitempty"`
}

// SessionReply is one message from init on a session's channel.
type SessionReply struct {
	ID     uint64 `json:"id"`
	Forked bool   `json:"forked,omitempty"`
	Exited bool   `json:"exited,omitempty"`
	// Started, with Exited: the command was handed to its first stage.
	// Without it, the stage died first (another command of the same uid
	// may kill it) and the command never ran.
	Started bool `json:"started,omitempty"`
	// ExitCode, Signal and WallNanos describe an Exited command, as
	// Report does for a one-shot program.
	ExitCode  int    `json:"exit_code,omitempty"`
	Signal    int    `json:"signal,omitempty"`
	WallNanos int64  `json:"wall_ns,omitempty"`
	ExecError string `json:"exec_error,omitempty"`
	Error     string `json:"error,omitempty"`
	// Errno is the system error of a failed file operation (ENOENT,
	// ELOOP, EXDEV…), 0 when there is none.
	Errno int   `json:"errno,omitempty"`
	Size  int64 `json:"size,omitempty"`
	// Truncated: OpList stopped at Max entries.
	Truncated bool `json:"truncated,omitempty"`
}

// ShimCommand is what a command's first stage executes.
type ShimCommand struct {
	Path    string   `json:"path"` // found by init in the box's PATH
	Argv    Exact    `json:"argv"`
	Env     Exact    `json:"env"`
	Dir     Exact    `json:"dir"`
	Rlimits []Rlimit `json:"rlimits"`
	TTY     bool     `json:"tty,omitempty"`    // see SessionRequest
	Notify  bool     `json:"notify,omitempty"` // see SessionRequest
}

// ListEntry is one directory entry of OpList. Name is carried exactly.
type ListEntry struct {
	Name       []byte `json:"name"`
	Type       string `json:"type"` // file, dir, symlink, fifo, socket, device
	Size       int64  `json:"size"`
	Mode       uint32 `json:"mode"` // permission bits
	MtimeNanos int64  `json:"mtime_ns"`
}

// SignalKillProgram and SignalStopProgram, sent to a run's init, make it
// send SIGKILL and SIGSTOP to the program (which init could not catch as
// themselves). Real-time signals nothing else in a box uses.
const (
	SignalKillProgram = syscall.Signal(40)
	SignalStopProgram = syscall.Signal(41)
)
