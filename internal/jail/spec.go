// Package jail runs one command in a fresh box: user, pid, mount, network,
// ipc, uts and cgroup namespaces; a read-only view of the system; private
// size-limited tmpfs for the workspace and /tmp; a seccomp allowlist; no
// capabilities; cgroup and rlimit limits. It is the supervisor side: it
// spawns runbox-init (package boxinit) into the namespaces, places it in a
// cgroup, feeds it the configuration and the workspace's files, enforces
// the time and output limits, and turns what happened into a Result. It
// knows nothing of HTTP or of languages.
//
// A Session is a box that lives across many commands (session_linux.go):
// runbox-init serves commands and file operations on a channel, each
// command in a cgroup of its own below the box's.
package jail

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Limits bound one run. A zero field means "use the default" when a Spec is
// normalised by Jail.Run; see Defaults.
type Limits struct {
	WallTime  time.Duration // wall-clock time of the program
	CPUTime   time.Duration // CPU time of the whole box
	Memory    int64         // bytes of memory (RAM, tmpfs pages included; no swap)
	Processes int           // processes and threads at once
	FileSize  int64         // largest file the program may write
	OpenFiles int           // open file descriptors per process
	Output    int64         // bytes of stdout and of stderr kept; more kills the box
	Disk      int64         // size of /box and of /tmp (each)
	Stack     int64         // stack size per process
	CPUs      float64       // CPU bandwidth in cores; 0 = no quota
}

// Defaults are the limits used for every field a Spec leaves zero.
var Defaults = Limits{
	WallTime:  10 * time.Second,
	CPUTime:   10 * time.Second,
	Memory:    256 << 20,
	Processes: 128,
	FileSize:  16 << 20,
	OpenFiles: 256,
	Output:    1 << 20,
	Disk:      64 << 20,
	Stack:     8 << 20,
}

// WithDefaults fills zero fields from d.
func (l Limits) WithDefaults(d Limits) Limits {
	if l.WallTime == 0 {
		l.WallTime = d.WallTime
	}
	if l.CPUTime == 0 {
		l.CPUTime = d.CPUTime
	}
	if l.Memory == 0 {
		l.Memory = d.Memory
	}
	if l.Processes == 0 {
		l.Processes = d.Processes
	}
	if l.FileSize == 0 {
		l.FileSize = d.FileSize
	}
	if l.OpenFiles == 0 {
		l.OpenFiles = d.OpenFiles
	}
	if l.Output == 0 {
		l.Output = d.Output
	}
	if l.Disk == 0 {
		l.Disk = d.Disk
	}
	if l.Stack == 0 {
		l.Stack = d.Stack
	}
	if l.CPUs == 0 {
		l.CPUs = d.CPUs
	}
	return l
}

// Validate rejects limits no box can run with.
func (l Limits) Validate() error {
	switch {
	case l.WallTime <= 0:
		return fmt.Errorf("wall time must be positive")
	case l.CPUTime <= 0:
		return fmt.Errorf("cpu time must be positive")
	case l.Memory < 4<<20:
		return fmt.Errorf("memory must be at least 4MiB")
	case l.Processes < 1:
		return fmt.Errorf("processes must be at least 1")
	case l.FileSize < 1:
		return fmt.Errorf("file size must be positive")
	case l.OpenFiles < 8:
		return fmt.Errorf("open files must be at least 8")
	case l.Output < 1:
		return fmt.Errorf("output must be positive")
	case l.Disk < 64<<10:
		return fmt.Errorf("disk must be at least 64KiB")
	case l.Stack < 64<<10:
		return fmt.Errorf("stack must be at least 64KiB")
	case l.CPUs < 0:
		return fmt.Errorf("cpus must not be negative")
	}
	return nil
}

// DefaultEnv is added to a run's environment for keys it does not set.
var DefaultEnv = []string{
	"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
	"HOME=/box",
	"LANG=C.UTF-8",
	"TMPDIR=/tmp",
}

// File is one file (or directory) placed in the workspace before the run.
type File struct {
	Name string // slash-separated path relative to /box
	Data []byte
	Mode uint32 // permission bits; 0 means 0644 (0755 for directories)
	Dir  bool
	// Symlink, when set, makes the entry a symbolic link to this target
	// (resolved inside the box only).
	Symlink string
}

// Spec is one run.
type Spec struct {
	Argv  []string
	Env   []string // KEY=VALUE; a default PATH, HOME and LANG are added when absent
	Dir   string   // working directory inside the box; default /box
	Stdin io.Reader
	// StdoutTee and StderrTee, when set, receive the program's output as it
	// is produced: exactly the bytes kept in the Result (the first
	// Limits.Output bytes of each stream), written from the goroutine that
	// reads that stream.
	StdoutTee, StderrTee io.Writer
	// MergeOutput makes the program's stderr the same descriptor as its
	// stdout: both arrive interleaved as written, in Stdout (counted
	// against Limits.Output as stdout), and Stderr stays empty.
	MergeOutput bool
	Files       []File
	// Collect, when set, returns workspace files after the run.
	Collect *Collect
	// Control, when set, signals the program while it runs (Resize does
	// not apply: a run has no terminal). One Control serves one Run.
	Control *Control
	// Root, when set, is a root filesystem (an unpacked image) whose
	// entries the box sees read-only instead of Config.Binds (see
	// RootBinds). Such boxes start on demand: the pool holds host-root
	// boxes only.
	Root string
	Limits
}

// Collect selects the workspace files returned after a run: regular files
// whose slash-separated path below /box matches one of Patterns
// (path.Match syntax; "**" alone matches every file, "dir/**" everything
// below dir). They are read inside the box by runbox-init once every
// process of the program is dead, never by the host, and never through a
// symlink; FIFOs, sockets and devices are skipped. A box killed by a limit
// or a cancellation returns no files. Zero bounds take the defaults below.
type Collect struct {
	Patterns []string
	MaxFiles int           // default 100
	MaxBytes int64         // total content; default 16 MiB
	MaxDepth int           // directory levels below /box; default 16
	MaxTime  time.Duration // for the walk; default 2s
}

// Collect defaults.
const (
	DefaultCollectFiles = 100
	DefaultCollectBytes = 16 << 20
	DefaultCollectDepth = 16
	DefaultCollectTime  = 2 * time.Second
)

// Status is how a run ended.
type Status string

const (
	StatusOK            Status = "ok"
	StatusRuntimeError  Status = "runtime_error"
	StatusSignaled      Status = "signaled"
	StatusTimeLimit     Status = "time_limit"
	StatusMemoryLimit   Status = "memory_limit"
	StatusOutputLimit   Status = "output_limit"
	StatusInternalError Status = "internal_error"
)

// Result is what happened. A program that fails is a Result, never an error:
// Run returns an error only when the service itself failed (and then the
// Result's Status is StatusInternalError).
type Result struct {
	Status          Status
	ExitCode        int
	Signal          int // 0 when the program was not killed by a signal
	Message         string
	Stdout, Stderr  []byte
	StdoutTruncated bool
	StderrTruncated bool
	WallTime        time.Duration
	CPUTime         time.Duration
	Memory          int64 // peak bytes
	// Files are the collected workspace files (Spec.Collect), in walk
	// order; FilesTruncated says a bound left some out.
	Files          []File
	FilesTruncated bool
}

// SignalName is the conventional name of a signal ("SIGSEGV").
func SignalName(sig int) string {
	if name := signalName(sig); name != "" {
		return name
	}
	return "signal " + strconv.Itoa(sig)
}

// Errors that say the request itself cannot be run, not that runbox failed:
// callers report them as the client's fault (HTTP 422), naming the rule.
var (
	// ErrSpecTooLarge: the argv, environment or workspace description
	// exceeds what a box accepts (MaxConfigBytes, MaxArgBytes).
	ErrSpecTooLarge = errors.New("run specification too large")
	// ErrWorkspaceFull: the initial files do not fit in the box's disk
	// (Limits.Disk bytes, or its inodes).
	ErrWorkspaceFull = errors.New("workspace files do not fit in the box's disk")
)

// Bounds of one Spec, checked before a box is taken.
const (
	// MaxConfigBytes bounds argv plus environment plus working directory
	// plus collection patterns, in bytes, as runbox-init receives them.
	MaxConfigBytes = 512 << 10
	// MaxArgBytes bounds one argv element or one KEY=VALUE (the kernel's
	// MAX_ARG_STRLEN is 128 KiB; a program name is at most PATH_MAX).
	MaxArgBytes = 128 << 10
)
