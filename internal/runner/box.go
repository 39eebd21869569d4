package runner

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/runbox-dev/runbox/internal/env"
	"github.com/runbox-dev/runbox/internal/jail"
)

// A Box is a long-lived box (a jail session) with an optional language
// environment: commands run in it one after another or several at once,
// files are read and written through its own view, and whole requests
// (compile, then run or cases) run in it over its files. The session
// package holds boxes; the runner only opens them.
type Box struct {
	r    *Runner
	s    *jail.Session
	lang *env.Environment // nil: no environment
	lim  Limits
	// image is the image the box's root is from ("": the host's); release
	// lets the store evict it again.
	image   string
	release func()
}

// BoxSpec describes a box to open.
type BoxSpec struct {
	Language string // optional: the environment's variables and limits
	Env      []string
	Dir      string // default working directory; default /box
	Files    []File
	// Limits hold for the whole box (memory, disk, processes, file size,
	// stack); its time, output and open-file limits are each command's
	// defaults. Zero fields: the environment's, then the runner's
	// defaults, then the jail's.
	Limits Limits
	// Ceiling caps the limits, defaults included (Request.Ceiling).
	Ceiling Limits
}

// Types of a box's commands (the jail's: callers never import it).
type (
	// Command is one command in a box.
	Command = jail.CommandSpec
	// TTY asks for a pseudo-terminal of that size.
	TTY = jail.TTY
	// Control signals or resizes a started command.
	Control = jail.Control
	// DirEntry is one entry of a box directory.
	DirEntry = jail.DirEntry
)

// Errors of a box and its commands.
var (
	ErrBoxClosed     = jail.ErrSessionClosed
	ErrListTruncated = jail.ErrListTruncated
	ErrNotStarted    = jail.ErrNotStarted
	ErrCommandEnded  = jail.ErrCommandEnded
)

// MaxListEntries bounds one directory listing.
const MaxListEntries = jail.MaxListEntries

// OpenBox opens a box.
func (r *Runner) OpenBox(ctx context.Context, spec BoxSpec) (*Box, error) {
	b := &Box{r: r}
	envv := spec.Env
	if spec.Language != "" {
		e, err := r.envs.Lookup(spec.Language)
		if err != nil {
			return nil, err
		}
		if !e.Available {
			return nil, fmt.Errorf("%w: %s (%s)", ErrUnavailable, e.Name, e.Reason)
		}
		b.lang = e
		b.lim = Capped(RunLimits(spec.Limits, e, r.Defaults), spec.Ceiling)
	} else {
		b.lim = Capped(spec.Limits.WithDefaults(r.Defaults).WithDefaults(jail.Defaults), spec.Ceiling)
	}
	pl, err := place(ctx, r.Images, b.lang)
	if err != nil {
		return nil, err
	}
	if b.lang != nil {
		envv = pl.envOf(b.lang, spec.Env)
		b.image = b.lang.Image
	}
	s, err := r.jail.OpenSession(ctx, jail.SessionSpec{Env: envv, Dir: spec.Dir, Files: toJailFiles(spec.Files), Limits: b.lim, Root: pl.root})
	if err != nil {
		pl.release()
		return nil, err
	}
	b.release = sync.OnceFunc(pl.release) // Close may come twice
	b.s = s
	return b, nil
}

// Limits are the box's own (with every default filled).
func (b *Box) Limits() Limits { return b.lim }

// Language is the box's environment's name, or "".
func (b *Box) Language() string {
	if b.lang == nil {
		return ""
	}
	return b.lang.Name
}

// Exec runs one command and waits for its end (see jail.Session.Exec).
func (b *Box) Exec(ctx context.Context, cmd Command) (Result, error) {
	return b.s.Exec(ctx, cmd)
}

// ReadFile returns a regular file of at most max bytes.
func (b *Box) ReadFile(ctx context.Context, path string, max int64) ([]byte, error) {
	return b.s.ReadFile(ctx, path, max)
}

// WriteFile creates or replaces a regular file, making missing parent
// directories.
func (b *Box) WriteFile(ctx context.Context, path string, data []byte, mode uint32) error {
	return b.s.WriteFileDirs(ctx, path, data, mode)
}

// List lists a directory.
func (b *Box) List(ctx context.Context, dir string) ([]DirEntry, error) {
	return b.s.List(ctx, dir)
}

// Remove removes a file or an empty directory.
func (b *Box) Remove(ctx context.Context, path string) error {
	return b.s.Remove(ctx, path)
}

// Close ends the box and everything in it.
func (b *Box) Close() error {
	err := b.s.Close()
	if b.release != nil {
		b.release()
	}
	return err
}

// Run runs a request in the box, over the box's files: the request's files
// are written into /box first (replacing files of the same name), a
// compiled language is compiled there (its output stays in the box; no
// compile cache), then the program runs once or once per case, each a
// command of the box. The request's limits are each command's: wall and
// CPU time, output, open files; the box's memory, disk and processes hold
// for all. Outputs are not collected (the files stay in the box).
func (b *Box) Run(ctx context.Context, req Request) (*Response, error) {
	for _, f := range req.Files {
		if err := b.WriteFile(ctx, f.Name, f.Content, f.Mode); err != nil {
			return nil, fmt.Errorf("file %s: %w", f.Name, err)
		}
	}
	st := req.Stream
	if len(req.Command) > 0 {
		resp := &Response{}
		var err error
		resp.Cases, resp.Run, err = b.runAll(ctx, req.Command, req.Env, req.Limits.WithDefaults(b.lim), req)
		return resp, err
	}
	name := req.Language
	if name == "" && b.lang != nil {
		name = b.lang.Name
	}
	p, err := b.r.program(name, req)
	if err != nil {
		return nil, err
	}
	e, main, names, argv := p.env, p.main, p.names, p.argv
	if e.Image != b.image {
		return nil, fmt.Errorf("%w in this box: %s runs on %s, the box on %s (open a box of that language)", ErrUnavailable, e.Name, rootName(e.Image), rootName(b.image))
	}
	resp := &Response{Language: e.Name, Version: e.VersionText}
	envv := append(append([]string{}, e.Env...), req.Env...)
	if e.Compiled() {
		cargv, err := env.Expand(e.Compile, main, names)
		if err != nil {
			return nil, err
		}
		st.stage("compile", 0)
		lim := Capped(CompileLimits(req.CompileLimits, e, b.r.Defaults), req.Ceiling)
		res, err := b.Exec(ctx, commandOf(cargv, envv, nil, lim, st))
		if err != nil {
			return nil, err
		}
		resp.Compile = &res
		if res.Status != jail.StatusOK {
			return resp, nil
		}
	}
	resp.Cases, resp.Run, err = b.runAll(ctx, argv, envv, Capped(RunLimits(req.Limits, e, b.r.Defaults), req.Ceiling), req)
	return resp, err
}

func (b *Box) runAll(ctx context.Context, argv, envv []string, lim Limits, req Request) ([]CaseResult, *Result, error) {
	st := req.Stream
	if len(req.Cases) > 0 {
		cases := make([]CaseResult, 0, len(req.Cases))
		for i, c := range req.Cases {
			st.stage("case", i)
			cmd := commandOf(append(append([]string{}, argv...), c.Args...), envv, bytes.NewReader(c.Stdin), lim, st)
			cmd.MergeOutput = req.MergeOutput
			res, err := b.Exec(ctx, cmd)
			if err != nil {
				return nil, nil, err
			}
			cases = append(cases, CaseResult{Result: res, Verdict: verdict(res, c.ExpectedOutput)})
		}
		return cases, nil, nil
	}
	st.stage("run", 0)
	cmd := commandOf(append(append([]string{}, argv...), req.Args...), envv, st.stdin(req.Stdin), lim, st)
	cmd.MergeOutput = req.MergeOutput
	res, err := b.Exec(ctx, cmd)
	if err != nil {
		return nil, nil, err
	}
	return nil, &res, nil
}

// commandOf is a command with a step's argv, environment, stdin, and the
// limits a command has of its own.
func commandOf(argv, envv []string, stdin io.Reader, lim Limits, st *Stream) Command {
	cmd := Command{Argv: argv, Env: envv, Stdin: stdin,
		WallTime: lim.WallTime, CPUTime: lim.CPUTime, Output: lim.Output, OpenFiles: lim.OpenFiles}
	cmd.StdoutTee, cmd.StderrTee = st.tees()
	return cmd
}

// rootName names a box's root for a message.
func rootName(image string) string {
	if image == "" {
		return "the host's toolchains"
	}
	return "image " + image
}
