package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/runbox-dev/runbox/internal/jail"
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

// BoxFlags are the flags runbox run and runbox shell share: the box's
// limits, the program's environment, the workspace's files and the init
// binary.
type BoxFlags struct {
	Limits   jail.Limits
	Env      []string
	Files    string
	InitPath string
	// Server, when set (--server or RUNBOX_SERVER), is a runbox serve to
	// run on instead of a local jail.
	Server string
	// Set names the flags given on the command line.
	Set map[string]bool
}

// register adds the flags to fset; the limits' current values are their
// defaults. wallHelp and cpuHelp say what the time limits cover.
func (b *BoxFlags) register(fset *flag.FlagSet, wallHelp, cpuHelp, outputHelp string) {
	l := &b.Limits
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
	fset.Var(envFlag{&b.Env}, "env", "KEY=VALUE for the program (repeatable)")
	fset.StringVar(&b.Files, "files", "", "host directory copied into the workspace /box first")
	fset.StringVar(&b.InitPath, "init", "", "runbox-init binary to use instead of the embedded one")
	fset.StringVar(&b.Server, "server", os.Getenv("RUNBOX_SERVER"), "URL of a runbox serve to run on instead of this host (env RUNBOX_SERVER)")
}

// parse parses args with fset, where register added the flags, and checks
// the limits; -h prints usage and the flags and returns flag.ErrHelp.
func (b *BoxFlags) parse(fset *flag.FlagSet, args []string, usage string, stderr io.Writer) error {
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
	b.Set = map[string]bool{}
	fset.Visit(func(f *flag.Flag) { b.Set[f.Name] = true })
	if b.Server != "" {
		// What a server does not take is refused rather than dropped.
		for _, name := range []string{"stack", "cpus", "init"} {
			if b.Set[name] {
				return usageError{"--" + name + " is not available with --server"}
			}
		}
	}
	l := &b.Limits
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

// Workspace reads --files, bounded by the workspace's size.
func (b *BoxFlags) Workspace() ([]jail.File, error) {
	if b.Files == "" {
		return nil, nil
	}
	files, err := readTree(b.Files, b.Limits.Disk)
	if err != nil {
		return nil, usageError{"--files: " + err.Error()}
	}
	return files, nil
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

// HasKey reports whether envv (KEY=VALUE) sets key.
func HasKey(envv []string, key string) bool {
	for _, kv := range envv {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}
