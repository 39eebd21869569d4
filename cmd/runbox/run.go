package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/runbox-dev/runbox/internal/jail"
	"github.com/runbox-dev/runbox/internal/result"
	"github.com/runbox-dev/runbox/internal/units"
)

type durationFlag struct{ d *time.Duration }

func (f durationFlag) String() string {
	if f.d == nil {
		return ""
	}
	return f.d.String()
}
func (f durationFlag) Set(s string) error {
	d, err := units.ParseDuration(s)
	if err == nil && d == 0 {
		err = fmt.Errorf("duration %q must be positive", s)
	}
	*f.d = d
	return err
}

type sizeFlag struct{ n *int64 }

func (f sizeFlag) String() string {
	if f.n == nil {
		return ""
	}
	return units.FormatSize(*f.n)
}
func (f sizeFlag) Set(s string) error {
	n, err := units.ParseSize(s)
	if err == nil && n == 0 {
		err = fmt.Errorf("size %q must be positive", s)
	}
	*f.n = n
	return err
}

type envFlag struct{ env *[]string }

func (f envFlag) String() string { return "" }
func (f envFlag) Set(s string) error {
	k, _, ok := strings.Cut(s, "=")
	if !ok || k == "" || strings.ContainsRune(s, 0) {
		return fmt.Errorf("%q: want KEY=VALUE", s)
	}
	*f.env = append(*f.env, s)
	return nil
}

// usageError is a mistake in the command line: one line, exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// boxFlags are the flags runbox run and runbox shell share: the box's
// limits, the program's environment, the workspace's files and the init
// binary.
type boxFlags struct {
	limits   jail.Limits
	env      []string
	files    string
	initPath string
	// server, when set (--server or RUNBOX_SERVER), is a runbox serve to
	// run on instead of a local jail.
	server string
	// set names the flags given on the command line.
	set map[string]bool
}

// register adds the flags to fset; the limits' current values are their
// defaults. wallHelp and cpuHelp say what the time limits cover.
func (b *boxFlags) register(fset *flag.FlagSet, wallHelp, cpuHelp, outputHelp string) {
	l := &b.limits
	fset.Var(durationFlag{&l.WallTime}, "wall-time", wallHelp)
	fset.Var(durationFlag{&l.CPUTime}, "cpu-time", cpuHelp)
	fset.Var(sizeFlag{&l.Memory}, "memory", "memory limit (RAM and tmpfs pages, no swap)")
	fset.IntVar(&l.Processes, "processes", l.Processes, "processes and threads at once")
	fset.Var(sizeFlag{&l.FileSize}, "file-size", "largest file the program may write")
	fset.IntVar(&l.OpenFiles, "open-files", l.OpenFiles, "open file descriptors per process")
	fset.Var(sizeFlag{&l.Output}, "output", outputHelp)
	fset.Var(sizeFlag{&l.Disk}, "disk", "size of the workspace /box and of /tmp (each)")
	fset.Var(sizeFlag{&l.Stack}, "stack", "stack size")
	fset.Float64Var(&l.CPUs, "cpus", l.CPUs, "CPU bandwidth in cores (0 = no quota)")
	fset.Var(envFlag{&b.env}, "env", "KEY=VALUE for the program (repeatable)")
	fset.StringVar(&b.files, "files", "", "host directory copied into the workspace /box first")
	fset.StringVar(&b.initPath, "init", "", "runbox-init binary to use instead of the embedded one")
	fset.StringVar(&b.server, "server", os.Getenv("RUNBOX_SERVER"), "URL of a runbox serve to run on instead of this host (env RUNBOX_SERVER)")
}

// parse parses args with fset, where register added the flags, and checks
// the limits; -h prints usage and the flags and returns flag.ErrHelp.
func (b *boxFlags) parse(fset *flag.FlagSet, args []string, usage string, stderr io.Writer) error {
	fset.SetOutput(io.Discard)
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "usage: "+usage+"\n\nflags:")
			fset.SetOutput(stderr)
			fset.PrintDefaults()
			return err
		}
		return usageError{err.Error()}
	}
	b.set = map[string]bool{}
	fset.Visit(func(f *flag.Flag) { b.set[f.Name] = true })
	if b.server != "" {
		// What a server does not take is refused rather than dropped.
		for _, name := range []string{"stack", "cpus", "init"} {
			if b.set[name] {
				return usageError{"--" + name + " is not available with --server"}
			}
		}
	}
	l := &b.limits
	if l.Processes < 1 {
		return usageError{"--processes must be at least 1"}
	}
	if l.OpenFiles < 8 {
		return usageError{"--open-files must be at least 8"}
	}
	if l.CPUs < 0 {
		return usageError{"--cpus must not be negative"}
	}
	if err := l.Validate(); err != nil {
		return usageError{err.Error()}
	}
	return nil
}

// workspace reads --files, bounded by the workspace's size.
func (b *boxFlags) workspace() ([]jail.File, error) {
	if b.files == "" {
		return nil, nil
	}
	files, err := readTree(b.files, b.limits.Disk)
	if err != nil {
		return nil, usageError{"--files: " + err.Error()}
	}
	return files, nil
}

type runOptions struct {
	box   boxFlags
	spec  jail.Spec
	json  bool
	stdin string
}

func parseRun(args []string, stderr io.Writer) (*runOptions, error) {
	o := &runOptions{box: boxFlags{limits: jail.Defaults}}
	fset := flag.NewFlagSet("runbox run", flag.ContinueOnError)
	o.box.register(fset, "wall-clock time limit", "CPU time limit of the whole box",
		"bytes of stdout and of stderr kept; more kills the box")
	fset.BoolVar(&o.json, "json", false, "print one JSON object with the result")
	fset.StringVar(&o.stdin, "stdin", "", "file to use as the program's stdin (default: runbox's stdin)")
	if err := o.box.parse(fset, args, "runbox run [flags] -- COMMAND [ARG...]", stderr); err != nil {
		return nil, err
	}
	o.spec = jail.Spec{Argv: fset.Args(), Env: o.box.env, Limits: o.box.limits}
	if len(o.spec.Argv) == 0 {
		return nil, usageError{"no command given (runbox run [flags] -- COMMAND [ARG...])"}
	}
	return o, nil
}

func cmdRun(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parseRun(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "runbox run:", err)
		return exitUsage
	}
	o.spec.Stdin = stdin
	if o.stdin != "" {
		f, err := os.Open(o.stdin)
		if err != nil {
			fmt.Fprintln(stderr, "runbox run: --stdin:", err)
			return exitUsage
		}
		defer f.Close()
		o.spec.Stdin = f
	}
	if o.box.server != "" {
		return runRemote(o, stdout, stderr)
	}
	if o.spec.Files, err = o.box.workspace(); err != nil {
		fmt.Fprintln(stderr, "runbox run:", err)
		return exitUsage
	}

	if !o.json {
		// Output passes through as the program writes it.
		o.spec.StdoutTee, o.spec.StderrTee = stdout, stderr
	}
	cfg := jail.DefaultConfig()
	cfg.InitPath = o.box.initPath
	j, err := jail.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "runbox run:", err)
		return exitInternalError
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	res, runErr := j.Run(ctx, o.spec)
	stop()
	if err := j.Close(); err != nil {
		fmt.Fprintln(stderr, "runbox run: clean up:", err)
	}

	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(result.From(res)); err != nil {
			return exitInternalError
		}
		if runErr != nil {
			return exitInternalError
		}
		return 0
	}
	return exitCode(res, stderr)
}

// exitCode is runbox's exit code for a program's result (see the exit
// codes in main.go), with a one-line message on stderr for what runbox
// decided.
func exitCode(res jail.Result, stderr io.Writer) int {
	switch res.Status {
	case jail.StatusOK, jail.StatusRuntimeError:
		if res.ExitCode == exitCannotExecute && res.Message != "" {
			fmt.Fprintln(stderr, "runbox:", res.Message)
		}
		return res.ExitCode
	case jail.StatusSignaled:
		return 128 + res.Signal
	case jail.StatusTimeLimit:
		fmt.Fprintln(stderr, "runbox:", res.Message)
		return exitTimeLimit
	case jail.StatusMemoryLimit:
		fmt.Fprintln(stderr, "runbox:", res.Message)
		return exitMemoryLimit
	case jail.StatusOutputLimit:
		fmt.Fprintln(stderr, "runbox:", res.Message)
		return exitOutputLimit
	default:
		fmt.Fprintln(stderr, "runbox:", res.Message)
		return exitInternalError
	}
}

// readTree reads a host directory for the workspace. It is the operator's
// own directory, but it is still read without following symlinks (they are
// copied as symlinks) and bounded by the workspace size.
func readTree(root string, max int64) ([]jail.File, error) {
	var files []jail.File
	var total int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			files = append(files, jail.File{Name: rel, Dir: true, Mode: uint32(info.Mode().Perm())})
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			files = append(files, jail.File{Name: rel, Symlink: target})
		case info.Mode().IsRegular():
			total += info.Size()
			if total > max {
				return fmt.Errorf("more than the workspace size (%s)", units.FormatSize(max))
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files = append(files, jail.File{Name: rel, Data: b, Mode: uint32(info.Mode().Perm())})
		default:
			return fmt.Errorf("%s: not a regular file, directory or symlink", p)
		}
		return nil
	})
	return files, err
}
