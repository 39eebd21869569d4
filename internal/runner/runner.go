// Package runner turns a request — a language or a raw command, files,
// stdin, args, limits, test cases — into boxes: it compiles once (the
// compiled workspace comes back from the compile box and is cached), runs
// the program once or once per case, each in a fresh box, and turns jail
// results into the public response with verdicts. Sessions and async jobs
// will reuse it; only it calls the jail.
package runner

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/runbox-dev/runbox/internal/env"
	"github.com/runbox-dev/runbox/internal/jail"
)

// Jail is what the runner needs of the jail.
type Jail interface {
	Run(ctx context.Context, spec jail.Spec) (jail.Result, error)
	OpenSession(ctx context.Context, spec jail.SessionSpec) (*jail.Session, error)
}

var _ Jail = (*jail.Jail)(nil)

// Runner runs requests.
type Runner struct {
	jail  Jail
	envs  *env.Registry
	cache *Cache
	// Images roots the environments that name an image (nil: they fail
	// with ErrNoImages).
	Images Images
	// Defaults fill the limits a request and its environment leave unset
	// (zero: the jail's own defaults).
	Defaults Limits
}

// New makes a runner. cache may be nil (no compile cache).
func New(j Jail, envs *env.Registry, cache *Cache) *Runner {
	return &Runner{jail: j, envs: envs, cache: cache}
}

// File is one file of a request or response.
type File struct {
	Name    string
	Content []byte
	Mode    uint32
}

// Case is one test case.
type Case struct {
	Stdin          []byte
	Args           []string
	ExpectedOutput *string
}

// Request is one run. Names, sizes and limits are already validated (the
// API does it); the runner trusts their shape, never their content.
type Request struct {
	Language      string   // name or alias; or
	Command       []string // a raw argv, no environment
	Files         []File
	Main          string // the main file; default: the first file
	Stdin         []byte
	Args          []string
	Env           []string
	Limits        jail.Limits // zero fields: the environment's, then the server's defaults
	CompileLimits jail.Limits
	// Ceiling caps every limit the request ends with, defaults included
	// (an API key's maxima); zero fields cap nothing.
	Ceiling jail.Limits
	Outputs []string // patterns of workspace files to return
	Cases   []Case
	// MergeOutput gives the run, or each case, one descriptor for stdout
	// and stderr (jail.Spec.MergeOutput); never the compile step.
	MergeOutput bool
	// Stream, when set, receives progress and output as they happen.
	Stream *Stream
}

// Verdicts of a case besides the run's own status.
const (
	VerdictAccepted    = "accepted"
	VerdictWrongAnswer = "wrong_answer"
)

// CaseResult is one case's result.
type CaseResult struct {
	jail.Result
	Verdict string
}

// Response is what happened.
type Response struct {
	Language string
	Version  string
	Cached   bool
	Compile  *jail.Result
	Run      *jail.Result
	Cases    []CaseResult
	Files    []File
	// FilesTruncated says an output bound left files out.
	FilesTruncated bool
}

// ErrUnavailable is returned for a known language whose toolchain is
// missing on this host.
var ErrUnavailable = errors.New("language not available on this server")

// Output collection bounds for the files a request asks back.
const (
	MaxOutputFiles = 64
	MaxOutputBytes = 8 << 20
)

// Run runs a request. An error means the request could not be served (an
// unknown or unavailable language, a request the jail refuses — see
// ErrSpecTooLarge and ErrWorkspaceFull —, or runbox itself failed); a
// program that fails to compile or run is a Response.
func (r *Runner) Run(ctx context.Context, req Request) (*Response, error) {
	if len(req.Command) > 0 {
		return r.runCommand(ctx, req)
	}
	p, err := r.program(req.Language, req)
	if err != nil {
		return nil, err
	}
	e, main, names, argv := p.env, p.main, p.names, p.argv
	pl, err := place(ctx, r.Images, e)
	if err != nil {
		return nil, err
	}
	defer pl.release()
	resp := &Response{Language: e.Name, Version: e.VersionText}
	lim := Capped(RunLimits(req.Limits, e, r.Defaults), req.Ceiling)
	workspace := toJailFiles(req.Files)
	if e.Compiled() {
		art, cached, err := r.compile(ctx, e, pl, main, names, req)
		if err != nil {
			return nil, err
		}
		resp.Cached = cached
		res := art.result // the artifact may be shared: never change it
		resp.Compile = &res
		if res.Status != jail.StatusOK {
			return resp, nil
		}
		if b, n := footprint(art.files); b > lim.Disk || n > DiskInodes(lim.Disk) {
			tooBig(resp.Compile, b, n, lim.Disk)
			return resp, nil
		}
		workspace = art.files
	}
	resp.Cases, resp.Run, err = r.runAll(ctx, argv, pl.envOf(e, req.Env), pl.root, workspace, lim, req)
	if e.Compiled() && errors.Is(err, jail.ErrWorkspaceFull) {
		// The estimate above passed but the box disagreed: still the
		// compiled program's size, and still the request's business.
		b, n := footprint(workspace)
		tooBig(resp.Compile, b, n, lim.Disk)
		return resp, nil
	}
	if err != nil {
		return nil, err
	}
	if resp.Run != nil {
		resp.Files, resp.FilesTruncated = fromJailFiles(resp.Run.Files), resp.Run.FilesTruncated
		resp.Run.Files = nil
	}
	return resp, nil
}

// program is a request's program in its environment: the main file, the
// files' names, the run argv.
type program struct {
	env   *env.Environment
	main  string
	names []string
	argv  []string
}

// program looks up an available environment and expands its run argv for
// the request's files.
func (r *Runner) program(language string, req Request) (*program, error) {
	e, err := r.envs.Lookup(language)
	if err != nil {
		return nil, err
	}
	if !e.Available {
		return nil, fmt.Errorf("%w: %s (%s)", ErrUnavailable, e.Name, e.Reason)
	}
	p := &program{env: e, main: MainFile(req), names: make([]string, len(req.Files))}
	for i, f := range req.Files {
		p.names[i] = f.Name
	}
	if p.argv, err = env.Expand(e.Run, p.main, p.names); err != nil {
		return nil, err
	}
	return p, nil
}

// tooBig turns a successful compile into the limit its program hit: it
// does not fit in the run box's disk.
func tooBig(res *jail.Result, bytes, inodes, disk int64) {
	res.Status = jail.StatusOutputLimit
	res.Message = fmt.Sprintf("the compiled program needs %d bytes of disk (each file rounded up to %d-byte pages) and %d inodes, "+
		"more than the run box's disk_bytes %d holds (%d bytes, %d inodes): raise limits.disk_bytes", bytes, pageSize, inodes, disk, disk, DiskInodes(disk))
}

// runAll runs the program once per case, or once when there are none (then
// collecting the requested outputs).
func (r *Runner) runAll(ctx context.Context, argv, envv []string, root string, workspace []jail.File, lim jail.Limits, req Request) ([]CaseResult, *jail.Result, error) {
	stdout, stderr := req.Stream.tees()
	if len(req.Cases) > 0 {
		cases := make([]CaseResult, 0, len(req.Cases))
		for i, c := range req.Cases {
			req.Stream.stage("case", i)
			res, err := r.jail.Run(ctx, jail.Spec{
				Argv: append(append([]string{}, argv...), c.Args...), Env: envv, Root: root,
				Stdin: bytes.NewReader(c.Stdin), Files: workspace, Limits: lim,
				StdoutTee: stdout, StderrTee: stderr, Control: req.Stream.control(), MergeOutput: req.MergeOutput,
			})
			if err != nil {
				return nil, nil, err
			}
			cases = append(cases, CaseResult{Result: res, Verdict: verdict(res, c.ExpectedOutput)})
		}
		return cases, nil, nil
	}
	req.Stream.stage("run", 0)
	res, err := r.jail.Run(ctx, jail.Spec{
		Argv: append(append([]string{}, argv...), req.Args...), Env: envv, Root: root,
		Stdin: req.Stream.stdin(req.Stdin), Files: workspace, Limits: lim,
		StdoutTee: stdout, StderrTee: stderr, Control: req.Stream.control(), MergeOutput: req.MergeOutput,
		Collect: collectFor(req.Outputs),
	})
	if err != nil {
		return nil, nil, err
	}
	return nil, &res, nil
}

// runCommand runs a raw argv, once or once per case, like a language
// without a compile step and without an environment.
func (r *Runner) runCommand(ctx context.Context, req Request) (*Response, error) {
	lim := Capped(req.Limits.WithDefaults(r.Defaults).WithDefaults(jail.Defaults), req.Ceiling)
	cases, run, err := r.runAll(ctx, req.Command, req.Env, "", toJailFiles(req.Files), lim, req)
	if err != nil {
		return nil, err
	}
	resp := &Response{Run: run, Cases: cases}
	if run != nil {
		resp.Files, resp.FilesTruncated = fromJailFiles(run.Files), run.FilesTruncated
		run.Files = nil
	}
	return resp, nil
}

// MainFile is the request's main file: Main, or the first file.
func MainFile(req Request) string {
	if req.Main == "" && len(req.Files) > 0 {
		return req.Files[0].Name
	}
	return req.Main
}

// RunLimits are the limits a run box gets: the request's, then the
// environment's, then the server's defaults, then the jail's.
func RunLimits(req Limits, e *env.Environment, defaults Limits) Limits {
	return withDefaults(req, e.Limits).WithDefaults(defaults).WithDefaults(jail.Defaults)
}

// CompileLimits are the limits the compile box gets, likewise.
func CompileLimits(req Limits, e *env.Environment, defaults Limits) Limits {
	return withDefaults(req, e.CompileLimits).WithDefaults(defaults).WithDefaults(jail.Defaults)
}

// artifact is a compiled workspace: every file the compile step left.
type artifact struct {
	result jail.Result
	files  []jail.File
	size   int64
}

func (r *Runner) compile(ctx context.Context, e *env.Environment, pl placement, main string, names []string, req Request) (*artifact, bool, error) {
	lim := Capped(CompileLimits(req.CompileLimits, e, r.Defaults), req.Ceiling)
	argv, err := env.Expand(e.Compile, main, names)
	if err != nil {
		return nil, false, err
	}
	req.Stream.stage("compile", 0)
	streamed := false
	do := func(ctx context.Context) (*artifact, error) {
		streamed = true
		stdout, stderr := req.Stream.tees()
		res, err := r.jail.Run(ctx, jail.Spec{
			Argv: argv, Env: pl.envOf(e, req.Env), Root: pl.root, Files: toJailFiles(req.Files), Limits: lim,
			StdoutTee: stdout, StderrTee: stderr,
			// Everything the compiler left in the workspace is the program.
			Collect: &jail.Collect{Patterns: []string{"**"}, MaxFiles: 4096, MaxBytes: lim.Disk, MaxDepth: 32},
		})
		if err != nil {
			return nil, err
		}
		a := &artifact{result: res, files: res.Files}
		a.result.Files = nil
		if res.Status == jail.StatusOK && res.FilesTruncated {
			a.result.Status = jail.StatusOutputLimit
			a.result.Message = "the compiled program has more files or bytes than can be carried to the run"
		}
		for _, f := range a.files {
			a.size += int64(len(f.Data))
		}
		return a, nil
	}
	var a *artifact
	var cached bool
	if r.cache == nil {
		a, err = do(ctx)
	} else {
		a, cached, err = r.cache.Get(ctx, compileKey(e, pl, argv, lim, req), do)
	}
	if err == nil && !streamed {
		// Compiled by another request, or earlier: its output, at once.
		replay(req.Stream, a.result)
	}
	return a, cached, err
}

// replay writes a finished step's output to a stream.
func replay(st *Stream, res jail.Result) {
	stdout, stderr := st.tees()
	if stdout != nil && len(res.Stdout) > 0 {
		_, _ = stdout.Write(res.Stdout)
	}
	if stderr != nil && len(res.Stderr) > 0 {
		_, _ = stderr.Write(res.Stderr)
	}
}

// compileKey identifies a compile: the environment and its version, the
// argv, the environment variables, the limits, and every file.
func compileKey(e *env.Environment, pl placement, argv []string, lim jail.Limits, req Request) string {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte(e.Name))
	field([]byte(e.VersionText))
	field([]byte(pl.root)) // an image's root is named by its digest
	for _, a := range argv {
		field([]byte(a))
	}
	for _, kv := range pl.envOf(e, req.Env) {
		field([]byte(kv))
	}
	field([]byte(fmt.Sprintf("%+v", lim)))
	files := append([]File{}, req.Files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	for _, f := range files {
		field([]byte(f.Name))
		field([]byte(fmt.Sprint(f.Mode)))
		field(f.Content)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// verdict compares a case's output with the expected one, ignoring
// trailing whitespace on each line and trailing empty lines.
func verdict(res jail.Result, expected *string) string {
	if res.Status != jail.StatusOK {
		return string(res.Status)
	}
	if expected == nil {
		return string(res.Status)
	}
	if normalize(string(res.Stdout)) == normalize(*expected) {
		return VerdictAccepted
	}
	return VerdictWrongAnswer
}

func normalize(s string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t\r")
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}

func withDefaults(req jail.Limits, e env.Limits) jail.Limits {
	return req.WithDefaults(jail.Limits{
		WallTime: durationOf(e.WallTime), CPUTime: durationOf(e.CPUTime), Memory: int64(e.Memory),
		Processes: e.Processes, FileSize: int64(e.FileSize), OpenFiles: e.OpenFiles,
		Output: int64(e.Output), Disk: int64(e.Disk),
	})
}

func collectFor(patterns []string) *jail.Collect {
	if len(patterns) == 0 {
		return nil
	}
	return &jail.Collect{Patterns: patterns, MaxFiles: MaxOutputFiles, MaxBytes: MaxOutputBytes}
}

func toJailFiles(fs []File) []jail.File {
	out := make([]jail.File, len(fs))
	for i, f := range fs {
		out[i] = jail.File{Name: f.Name, Data: f.Content, Mode: f.Mode}
	}
	return out
}

func fromJailFiles(fs []jail.File) []File {
	var out []File
	for _, f := range fs {
		out = append(out, File{Name: f.Name, Content: f.Data, Mode: f.Mode})
	}
	return out
}

// Limits bound one box (the jail's type: the API speaks of limits through
// the runner and never imports the jail).
type Limits = jail.Limits

// DefaultLimits are the jail's built-in defaults.
var DefaultLimits = jail.Defaults

// Result is one box's outcome (the jail's type).
type Result = jail.Result

// Statuses of a Result (the jail's).
const (
	StatusOK        = jail.StatusOK
	StatusTimeLimit = jail.StatusTimeLimit
	StatusSignaled  = jail.StatusSignaled
)

// CPUTime is the CPU time of every step of the response (a nil one: 0).
func (r *Response) CPUTime() time.Duration {
	if r == nil {
		return 0
	}
	var d time.Duration
	for _, res := range []*jail.Result{r.Compile, r.Run} {
		if res != nil {
			d += res.CPUTime
		}
	}
	for _, c := range r.Cases {
		d += c.CPUTime
	}
	return d
}

// Capped is l with its time, memory and process limits lowered to c's
// where c sets them.
func Capped(l, c Limits) Limits {
	if c.WallTime > 0 && l.WallTime > c.WallTime {
		l.WallTime = c.WallTime
	}
	if c.CPUTime > 0 && l.CPUTime > c.CPUTime {
		l.CPUTime = c.CPUTime
	}
	if c.Memory > 0 && l.Memory > c.Memory {
		l.Memory = c.Memory
	}
	if c.Processes > 0 && l.Processes > c.Processes {
		l.Processes = c.Processes
	}
	return l
}
