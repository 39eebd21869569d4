// Package env owns runbox's language environments: each is data (one TOML
// file: name, aliases, version command, default source file name, optional
// compile argv, run argv, extra read-only mounts, default limits), with a
// conformance program beside it. The defaults are embedded; operators add
// or override environments with files of their own. Whether a toolchain is
// present is found out at start-up, by running its version command in a box.
package env

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/runbox-dev/runbox/internal/units"
)

// Environment is one language.
type Environment struct {
	Name    string   `toml:"name"`
	Aliases []string `toml:"aliases"`
	// Version is an argv whose first line of output names the version.
	Version []string `toml:"version"`
	// Source is the default name of the main file.
	Source string `toml:"source"`
	// Compile, when set, is the argv of the compile step. Run is the argv
	// of each run; the request's args are appended. Placeholders: {main}
	// (the main file), {stem} (its name without extension), {sources} (every
	// file with the main file's extension, sorted; expands to several
	// arguments). Names from a request are passed so that no tool reads
	// them as options (see Expand).
	Compile []string `toml:"compile"`
	Run     []string `toml:"run"`
	// Env is KEY=VALUE added to both steps.
	Env []string `toml:"env"`
	// Mounts are extra host paths the box sees read-only.
	Mounts []Mount `toml:"mounts"`
	// Image, when set, names an OCI image (registry/name:tag or @digest)
	// whose filesystem is the box's read-only root instead of the host's
	// system directories: the version, compile and run argvs run inside
	// it. Mounts do not go with it.
	Image string `toml:"image"`
	// Limits and CompileLimits are this language's defaults (zero fields:
	// the server's defaults).
	Limits        Limits `toml:"limits"`
	CompileLimits Limits `toml:"compile_limits"`

	// Conformance holds the files of the conformance program (from the
	// folder named like the environment beside its TOML file).
	Conformance map[string][]byte `toml:"-"`

	// Found at detection.
	Available   bool   `toml:"-"`
	VersionText string `toml:"-"`
	Reason      string `toml:"-"` // why it is unavailable
}

// Mount is one extra read-only path.
type Mount struct {
	Src string `toml:"src"`
	Dst string `toml:"dst"`
}

// Limits in human units, as written in environment files.
type Limits struct {
	WallTime  Duration `toml:"wall_time"`
	CPUTime   Duration `toml:"cpu_time"`
	Memory    Size     `toml:"memory"`
	Processes int      `toml:"processes"`
	FileSize  Size     `toml:"file_size"`
	OpenFiles int      `toml:"open_files"`
	Output    Size     `toml:"output"`
	Disk      Size     `toml:"disk"`
}

// Duration decodes "2s", "500ms" or a number of seconds.
type Duration time.Duration

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := units.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// Size decodes "64MiB", "512k" or a number of bytes.
type Size int64

func (s *Size) UnmarshalText(b []byte) error {
	v, err := units.ParseSize(string(b))
	*s = Size(v)
	return err
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+#._-]{0,31}$`)

// Validate checks an environment on its own.
func (e *Environment) Validate() error {
	if !nameRE.MatchString(e.Name) {
		return fmt.Errorf("name %q: lowercase letters, digits and + # . _ -, at most 32", e.Name)
	}
	for _, a := range e.Aliases {
		if !nameRE.MatchString(a) {
			return fmt.Errorf("%s: alias %q: lowercase letters, digits and + # . _ -", e.Name, a)
		}
	}
	if len(e.Run) == 0 || e.Run[0] == "" {
		return fmt.Errorf("%s: run must be a non-empty argv", e.Name)
	}
	if len(e.Version) == 0 {
		return fmt.Errorf("%s: version must be a non-empty argv", e.Name)
	}
	if e.Source == "" || path.Clean(e.Source) != e.Source || strings.Contains(e.Source, "/") {
		return fmt.Errorf("%s: source %q must be a plain file name", e.Name, e.Source)
	}
	for _, kv := range e.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("%s: env %q: want KEY=VALUE", e.Name, kv)
		}
	}
	if e.Image != "" {
		if len(e.Mounts) > 0 {
			return fmt.Errorf("%s: mounts are host paths and an image environment sees none: drop mounts or image", e.Name)
		}
		if len(e.Image) > 255 || strings.ContainsFunc(e.Image, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return fmt.Errorf("%s: image %q: a reference of at most 255 characters without spaces or control characters", e.Name, e.Image)
		}
	}
	for _, m := range e.Mounts {
		if !filepath.IsAbs(m.Src) || !filepath.IsAbs(m.Dst) {
			return fmt.Errorf("%s: mount %s → %s: paths must be absolute", e.Name, m.Src, m.Dst)
		}
	}
	return nil
}

// Compiled reports whether the environment has a compile step.
func (e *Environment) Compiled() bool { return len(e.Compile) > 0 }

// ErrUnsafeStem is returned by Expand for a main file whose name without
// extension ({stem}) a tool could read as an option.
var ErrUnsafeStem = errors.New("the main file's name without extension would start with a character tools read as an option")

// Expand fills the placeholders of an argv for a main file and the list of
// the request's file names.
//
// Names come from the request and reach tools that parse their arguments:
// a file named "-fplugin=./p.so" would be an option to gcc, and "@opts" a
// response file of options to gcc and javac. So a name that starts an
// argument is passed as "./name" unless its first byte is a letter, a digit,
// '_' or '.' (no tool reads such a word as anything but a name). {stem}
// cannot take a "./" (it names a class or an output), so a main file whose
// stem would start otherwise is refused with ErrUnsafeStem when argv uses
// {stem}.
func Expand(argv []string, main string, files []string) ([]string, error) {
	ext := path.Ext(main)
	stem := strings.TrimSuffix(path.Base(main), ext)
	var sources []string
	for _, f := range files {
		if path.Ext(f) == ext {
			sources = append(sources, f)
		}
	}
	sort.Strings(sources)
	out := make([]string, 0, len(argv)+len(sources))
	for _, a := range argv {
		if strings.Contains(a, "{stem}") && !plainStart(stem) {
			return nil, fmt.Errorf("%w: %q", ErrUnsafeStem, stem)
		}
		if a == "{sources}" {
			for _, f := range sources {
				out = append(out, asArg(f))
			}
			continue
		}
		if rest, ok := strings.CutPrefix(a, "{main}"); ok {
			a = asArg(main) + strings.ReplaceAll(rest, "{main}", main)
		} else {
			a = strings.ReplaceAll(a, "{main}", main)
		}
		a = strings.ReplaceAll(a, "{stem}", stem)
		out = append(out, a)
	}
	return out, nil
}

// plainStart reports whether s starts with a byte no tool reads as an
// option, a response file or anything else but the start of a name.
func plainStart(s string) bool {
	if s == "" {
		return false
	}
	c := s[0]
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.'
}

// asArg is a relative file name as an argument that names it and nothing
// else.
func asArg(name string) string {
	if plainStart(name) {
		return name
	}
	return "./" + name
}

// Registry holds environments by name and alias.
type Registry struct {
	list   []*Environment
	byName map[string]*Environment
}

// ErrUnknown is returned for a name that is neither an environment nor an
// alias.
var ErrUnknown = errors.New("unknown language")

// Load reads environments: every *.toml in each fs.FS, later ones replacing
// earlier ones of the same name (the embedded defaults first, then the
// operator's folders).
func Load(sources ...fs.FS) (*Registry, error) {
	byName := map[string]*Environment{}
	var order []string
	for _, fsys := range sources {
		paths, err := fs.Glob(fsys, "*.toml")
		if err != nil {
			return nil, err
		}
		sort.Strings(paths)
		for _, p := range paths {
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return nil, err
			}
			e := &Environment{}
			md, err := toml.Decode(string(b), e)
			if err != nil {
				return nil, fmt.Errorf("environment %s: %w", p, err)
			}
			if und := md.Undecoded(); len(und) > 0 {
				return nil, fmt.Errorf("environment %s: unknown field %s", p, und[0])
			}
			if err := e.Validate(); err != nil {
				return nil, fmt.Errorf("environment %s: %w", p, err)
			}
			e.Conformance, err = readDir(fsys, strings.TrimSuffix(p, ".toml"))
			if err != nil {
				return nil, fmt.Errorf("environment %s: conformance program: %w", p, err)
			}
			if _, ok := byName[e.Name]; !ok {
				order = append(order, e.Name)
			}
			byName[e.Name] = e
		}
	}
	r := &Registry{byName: map[string]*Environment{}}
	for _, name := range order {
		e := byName[name]
		r.list = append(r.list, e)
		r.byName[e.Name] = e
	}
	for _, e := range r.list {
		for _, a := range e.Aliases {
			if other, ok := r.byName[a]; ok && other != e {
				return nil, fmt.Errorf("alias %q of %s is already %s", a, e.Name, other.Name)
			}
			r.byName[a] = e
		}
	}
	return r, nil
}

// readDir reads the files of a folder (recursively), if it exists.
func readDir(fsys fs.FS, dir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == dir {
				return fs.SkipDir
			}
			return err
		}
		if d.Type().IsRegular() {
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			files[strings.TrimPrefix(p, dir+"/")] = b
		}
		return nil
	})
	if len(files) == 0 {
		files = nil
	}
	return files, err
}

// Lookup finds an environment by name or alias (case-insensitive).
func (r *Registry) Lookup(name string) (*Environment, error) {
	if e, ok := r.byName[strings.ToLower(name)]; ok {
		return e, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknown, name)
}

// List returns every environment, in load order.
func (r *Registry) List() []*Environment { return r.list }

// VersionRunner runs an argv in a box and returns its stdout.
type VersionRunner func(ctx context.Context, e *Environment, argv []string) (string, error)

// Detect runs every environment's version command and marks it available
// or not. A missing toolchain is a fact about the host, not an error.
func (r *Registry) Detect(ctx context.Context, run VersionRunner) {
	r.DetectEach(ctx, run, nil)
}

// DetectEach is Detect that calls each (when set) before each environment
// is tried, with its place in the list: for progress on a terminal.
func (r *Registry) DetectEach(ctx context.Context, run VersionRunner, each func(i, n int, e *Environment)) {
	for i, e := range r.list {
		if each != nil {
			each(i, len(r.list), e)
		}
		out, err := run(ctx, e, e.Version)
		first, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
		switch {
		case err != nil:
			e.Available, e.VersionText, e.Reason = false, "", err.Error()
		case first == "":
			e.Available, e.VersionText, e.Reason = false, "", "version command printed nothing"
		default:
			e.Available, e.VersionText, e.Reason = true, strings.TrimSpace(first), ""
		}
	}
}

// Images are the images environments name, each once, in load order.
func (r *Registry) Images() []string {
	var out []string
	seen := map[string]bool{}
	for _, e := range r.list {
		if e.Image != "" && !seen[e.Image] {
			seen[e.Image] = true
			out = append(out, e.Image)
		}
	}
	return out
}

// Mounts are the environments' extra read-only paths, one per destination
// (the first environment to name it wins), for the jail's binds.
func (r *Registry) Mounts() []Mount {
	seen := map[string]bool{}
	var out []Mount
	for _, e := range r.list {
		for _, m := range e.Mounts {
			m.Dst = filepath.Clean(m.Dst)
			if !seen[m.Dst] {
				seen[m.Dst] = true
				out = append(out, m)
			}
		}
	}
	return out
}
