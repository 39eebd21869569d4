package jail

import (
	"errors"
	"io"
	"time"
)

// SessionSpec describes a long-lived box (a session) into which commands
// are started later. Its Limits hold for the whole session: memory (RAM
// and tmpfs pages), disk, processes, file size and stack are enforced by
// the box's cgroup, tmpfs sizes and rlimits. WallTime, CPUTime, Output and
// OpenFiles are the defaults of each command, which may set its own.
type SessionSpec struct {
	Env   []string // KEY=VALUE; DefaultEnv fills keys it does not set
	Dir   string   // default working directory of commands; default /box
	Files []File   // placed in /box before the first command
	Root  string   // a root filesystem instead of Config.Binds, as in Spec
	Limits
}

// CommandSpec is one command in a session.
type CommandSpec struct {
	Argv []string
	// Env is added to the session's environment; a key set here wins.
	Env []string
	// Dir is the working directory; default the session's.
	Dir   string
	Stdin io.Reader
	// StdoutTee and StderrTee receive the output as it is produced (as in
	// Spec).
	StdoutTee, StderrTee io.Writer
	// MergeOutput makes the command's stderr the same pipe as its stdout
	// (as in Spec). A TTY's output is one stream already: there it
	// changes nothing.
	MergeOutput bool
	// TTY, when set, makes the command's stdin, stdout and stderr one
	// fresh pseudo-terminal of that size, its controlling terminal. What
	// the terminal shows (echoed input included) is Stdout, kept and teed
	// as a stream's output is; Stderr stays empty. Stdin is typed into it
	// once the command has started, and its end is the terminal's EOF
	// character (^D), not a hang-up; a nil Stdin is an EOF at once.
	//
	// With or without a TTY, Exec does not wait for a Read of Stdin still
	// blocked when the command ends: that Read's bytes are dropped, and
	// the Reader is the caller's to end.
	TTY *TTY
	// Control, when set, is how the caller signals the command or resizes
	// its terminal while it runs. One Control serves one Exec.
	Control *Control
	// Limits of this command alone (zero: the session's): wall-clock time,
	// CPU time of the command and everything it started, bytes kept of
	// each stream (one more kills the command), open files per process.
	WallTime  time.Duration
	CPUTime   time.Duration
	Output    int64
	OpenFiles int
}

// TTY is the size of a command's terminal, in character cells.
type TTY struct{ Rows, Cols uint16 }

// DirEntry is one entry of a session directory (Session.List).
type DirEntry struct {
	Name    string // exact bytes of the name
	Type    string // file, dir, symlink, fifo, socket, device
	Size    int64
	Mode    uint32 // permission bits
	ModTime time.Time
}

// Bounds of a session's file operations.
const (
	// MaxListEntries bounds the entries Session.List returns.
	MaxListEntries = 10000
	// FileOpTime bounds one file operation (and the context may shorten it).
	FileOpTime = 10 * time.Second
)

var (
	// ErrSessionClosed: the session was closed, or its box is gone.
	ErrSessionClosed = errors.New("session is closed")
	// ErrListTruncated: a directory holds more than MaxListEntries entries;
	// the first ones are returned with it.
	ErrListTruncated = errors.New("directory listing truncated")
)
