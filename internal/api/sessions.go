package api

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/runbox-dev/runbox/internal/result"
	"github.com/runbox-dev/runbox/internal/runner"
	"github.com/runbox-dev/runbox/internal/session"
)

// The sessions API: long-lived boxes, their commands and files. Session
// ids are 128 random bits: knowing one is what lets a client use it.

// SessionPath names a session.
type SessionPath struct {
	ID string `path:"id" maxLength:"64"`
}

// CommandPath names a command of a session.
type CommandPath struct {
	ID  string `path:"id" maxLength:"64"`
	CID string `path:"cid" maxLength:"64"`
}

func (s *Server) registerSessions(api huma.API) {
	errs := []int{400, 404, 422, 429, 500}
	huma.Register(api, huma.Operation{
		OperationID: "create-session", Method: http.MethodPost, Path: "/v1/sessions", DefaultStatus: http.StatusCreated,
		Summary:     "Create a session",
		Description: "Opens a long-lived box into which commands are started later. It ends on DELETE, after its idle timeout, at its maximum lifetime, or when the server stops.",
		Errors:      errs, MaxBodyBytes: s.cfg.MaxBodyBytes + 1, BodyReadTimeout: -1,
	}, s.createSession)
	huma.Register(api, huma.Operation{
		OperationID: "list-sessions", Method: http.MethodGet, Path: "/v1/sessions", Summary: "List the sessions",
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body SessionList }, error) {
		out := &struct{ Body SessionList }{Body: SessionList{Sessions: []SessionOut{}}}
		for _, ss := range s.cfg.Sessions.List() {
			if ss.Owner != ownerOf(ctx) {
				continue
			}
			out.Body.Sessions = append(out.Body.Sessions, sessionOut(ss))
		}
		return out, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "get-session", Method: http.MethodGet, Path: "/v1/sessions/{id}", Summary: "Describe a session", Errors: []int{404},
	}, func(ctx context.Context, in *SessionPath) (*struct{ Body SessionOut }, error) {
		ss, err := s.session(ctx, in.ID)
		if err != nil {
			return nil, err
		}
		return &struct{ Body SessionOut }{Body: sessionOut(ss)}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "update-session", Method: http.MethodPatch, Path: "/v1/sessions/{id}", Summary: "Change a session's environment, working directory or idle timeout",
		Errors: errs,
	}, s.updateSession)
	huma.Register(api, huma.Operation{
		OperationID: "delete-session", Method: http.MethodDelete, Path: "/v1/sessions/{id}", DefaultStatus: http.StatusNoContent,
		Summary: "End a session: every process in it dies", Errors: []int{404},
	}, func(ctx context.Context, in *SessionPath) (*struct{}, error) {
		if _, err := s.session(ctx, in.ID); err != nil {
			return nil, err
		}
		if err := s.cfg.Sessions.Delete(in.ID); err != nil {
			return nil, s.sessionError(ctx, err)
		}
		return nil, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "start-command", Method: http.MethodPost, Path: "/v1/sessions/{id}/commands",
		Summary:     "Run a command in a session",
		Description: "Answers 200 with the command's result when it ends, or at once 202 with its id when background is true.",
		Errors:      errs, MaxBodyBytes: s.cfg.MaxBodyBytes + 1, BodyReadTimeout: -1,
		Responses: map[string]*huma.Response{
			"200": {Description: "The command's result.", Content: map[string]*huma.MediaType{
				"application/json": {Schema: api.OpenAPI().Components.Schemas.Schema(reflect.TypeOf(result.Result{}), true, "Result")}}},
			"202": {Description: "A background command started.", Content: map[string]*huma.MediaType{
				"application/json": {Schema: api.OpenAPI().Components.Schemas.Schema(reflect.TypeOf(CommandStarted{}), true, "CommandStarted")}}},
		},
	}, s.startCommand)
	huma.Register(api, huma.Operation{
		OperationID: "list-commands", Method: http.MethodGet, Path: "/v1/sessions/{id}/commands", Summary: "The running and recent commands", Errors: []int{404},
	}, func(ctx context.Context, in *SessionPath) (*struct{ Body CommandList }, error) {
		ss, err := s.session(ctx, in.ID)
		if err != nil {
			return nil, err
		}
		out := &struct{ Body CommandList }{Body: CommandList{Commands: []CommandOut{}}}
		for _, c := range ss.Commands() {
			out.Body.Commands = append(out.Body.Commands, commandOut(c, false))
		}
		return out, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "get-command", Method: http.MethodGet, Path: "/v1/sessions/{id}/commands/{cid}",
		Summary: "A command: its output so far, its result when done", Errors: []int{404},
	}, func(ctx context.Context, in *CommandPath) (*struct{ Body CommandOut }, error) {
		c, err := s.command(ctx, in.ID, in.CID)
		if err != nil {
			return nil, err
		}
		return &struct{ Body CommandOut }{Body: commandOut(c, true)}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "signal-command", Method: http.MethodPost, Path: "/v1/sessions/{id}/commands/{cid}/signal", DefaultStatus: http.StatusNoContent,
		Summary: "Send a signal to a running command", Errors: []int{404, 409, 422},
	}, func(ctx context.Context, in *struct {
		CommandPath
		Body SignalBody
	}) (*struct{}, error) {
		c, err := s.command(ctx, in.ID, in.CID)
		if err != nil {
			return nil, err
		}
		if err := c.Signal(signals[in.Body.Signal]); err != nil {
			return nil, s.sessionError(ctx, err)
		}
		return nil, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "run-in-session", Method: http.MethodPost, Path: "/v1/sessions/{id}/run",
		Summary:     "Compile and run a program in a session",
		Description: "The body of /v1/run. Its files are written into the session's /box first; the compile and each run are commands of the session; outputs is not taken (the files stay in the session).",
		Errors:      errs, MaxBodyBytes: s.cfg.MaxBodyBytes + 1, BodyReadTimeout: -1,
		Responses: map[string]*huma.Response{"200": {Description: "The program's results.", Content: map[string]*huma.MediaType{
			"application/json": {Schema: api.OpenAPI().Components.Schemas.Schema(reflect.TypeOf(RunResponse{}), true, "RunResponse")},
		}}},
	}, s.runInSession)
}

// signals are the signals a client may send, by name: those a run's init
// passes on (see boxinit), and SIGKILL and SIGSTOP.
var signals = map[string]syscall.Signal{
	"SIGHUP": syscall.SIGHUP, "SIGINT": syscall.SIGINT, "SIGQUIT": syscall.SIGQUIT, "SIGILL": syscall.SIGILL,
	"SIGTRAP": syscall.SIGTRAP, "SIGABRT": syscall.SIGABRT, "SIGBUS": syscall.SIGBUS, "SIGFPE": syscall.SIGFPE,
	"SIGKILL": syscall.SIGKILL, "SIGUSR1": syscall.SIGUSR1, "SIGSEGV": syscall.SIGSEGV, "SIGUSR2": syscall.SIGUSR2,
	"SIGPIPE": syscall.SIGPIPE, "SIGALRM": syscall.SIGALRM, "SIGTERM": syscall.SIGTERM, "SIGCONT": syscall.SIGCONT,
	"SIGSTOP": syscall.SIGSTOP, "SIGTSTP": syscall.SIGTSTP, "SIGTTIN": syscall.SIGTTIN, "SIGTTOU": syscall.SIGTTOU,
	"SIGXCPU": syscall.SIGXCPU, "SIGXFSZ": syscall.SIGXFSZ, "SIGVTALRM": syscall.SIGVTALRM, "SIGWINCH": syscall.SIGWINCH,
	"SIGIO": syscall.SIGIO, "SIGSYS": syscall.SIGSYS,
}

// signalRule names them, for an error.
var signalRule = func() string {
	names := make([]string, 0, len(signals))
	for n := range signals {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return signals[names[i]] < signals[names[j]] })
	return "a signal's name: one of " + strings.Join(names, ", ")
}()

func (s *Server) session(ctx context.Context, id string) (*session.Session, error) {
	ss, err := s.cfg.Sessions.Get(id)
	if err == nil && ss.Owner != ownerOf(ctx) {
		// Another key's session is not there, as far as this key can
		// tell: 404, as for an id never made.
		err = session.ErrNotFound
	}
	if err != nil {
		return nil, s.sessionError(ctx, err)
	}
	return ss, nil
}

func (s *Server) command(ctx context.Context, id, cid string) (*session.Command, error) {
	ss, err := s.session(ctx, id)
	if err != nil {
		return nil, err
	}
	c, err := ss.Command(cid)
	if err != nil {
		return nil, s.sessionError(ctx, err)
	}
	return c, nil
}

// sessionError maps the sessions' errors to answers.
func (s *Server) sessionError(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, session.ErrNotFound):
		return problem(ctx, http.StatusNotFound, "no such session", "path.id", "no live session has this id (it may have ended)")
	case errors.Is(err, session.ErrEnded):
		return problem(ctx, http.StatusNotFound, "the session has ended", "path.id", err.Error())
	case errors.Is(err, session.ErrNoCommand):
		return problem(ctx, http.StatusNotFound, "no such command", "path.cid", "no running or recent command of this session has this id")
	case errors.Is(err, session.ErrTooMany):
		return busyAfter(ctx, err.Error()+": end one, or retry later", 5)
	case errors.Is(err, session.ErrBusy):
		return busyAfter(ctx, err.Error()+"; retry when one has ended", 1)
	case errors.Is(err, runner.ErrCommandEnded):
		return problem(ctx, http.StatusConflict, "the command has ended", "path.cid", err.Error())
	case errors.Is(err, runner.ErrNotStarted):
		return problem(ctx, http.StatusConflict, "the command has not started yet", "path.cid", err.Error())
	case ctx.Err() != nil:
		return problem(ctx, 499, "client went away", "", "cancelled")
	}
	s.log.Error("session call failed", "request_id", requestID(ctx), "err", err)
	return problem(ctx, http.StatusInternalServerError, "runbox failed", "", "internal error")
}

func busyAfter(ctx context.Context, msg string, seconds int) error {
	p := busy(ctx, msg)
	p.RetryAfter = seconds
	return p
}

func sessionOut(ss *session.Session) SessionOut {
	in := ss.Info()
	env := map[string]string{}
	for _, kv := range in.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return SessionOut{ID: in.ID, Owner: ss.Owner, Language: in.Language, CreatedAt: in.Created.UTC(), LastUsedAt: in.LastUsed.UTC(),
		ExpiresAt: in.ExpiresAt.UTC(), IdleTimeoutMS: in.IdleTimeout.Milliseconds(), MaxLifetimeMS: in.Lifetime.Milliseconds(),
		Env: env, Cwd: in.Cwd, Limits: limitsOut(in.Limits), RunningCommands: in.Running, URL: "/v1/sessions/" + in.ID}
}

func commandOut(c *session.Command, withOutput bool) CommandOut {
	out := CommandOut{ID: c.ID, Command: c.Argv, Status: "running", Background: c.Background, PTY: c.TTY, StartedAt: c.Started.UTC()}
	res, _ := c.Result()
	if res != nil {
		out.Status = "done"
		fin := c.Finished().UTC()
		out.FinishedAt = &fin
		if withOutput {
			r := result.From(*res)
			out.Result = &r
		}
		return out
	}
	if withOutput {
		stdout, stderr := c.Snapshot()
		out.Stdout, _ = result.Text(stdout)
		out.Stderr, _ = result.Text(stderr)
	}
	return out
}

// checkCwd checks a working directory: absolute, clean enough to read.
func checkCwd(ctx context.Context, loc, cwd string) error {
	if cwd == "" {
		return nil
	}
	if !strings.HasPrefix(cwd, "/") || strings.ContainsRune(cwd, 0) || len(cwd) > 4096 {
		return invalid(ctx, loc, "an absolute path inside the box, without NUL, at most 4096 bytes")
	}
	return nil
}

func ms(v *int64) time.Duration {
	if v == nil {
		return 0
	}
	return time.Duration(*v) * time.Millisecond
}

func (s *Server) createSession(ctx context.Context, in *struct{ Body SessionBody }) (*struct{ Body SessionOut }, error) {
	b := &in.Body
	spec := session.Spec{Language: b.Language, Cwd: b.Cwd, IdleTimeout: ms(b.IdleTimeoutMS), Lifetime: ms(b.MaxLifetimeMS), Owner: ownerOf(ctx)}
	if c := callerOf(ctx); c != nil {
		spec.OwnerMax, spec.Ceiling = c.Quota().Sessions, keyCeiling(ctx)
	}
	var err error
	if spec.Env, err = envList(ctx, "body.env", b.Env); err != nil {
		return nil, err
	}
	if err := checkCwd(ctx, "body.cwd", b.Cwd); err != nil {
		return nil, err
	}
	if spec.Files, err = s.files(ctx, "body.files", b.Files); err != nil {
		return nil, err
	}
	if spec.Limits, err = s.limits(ctx, "body.limits", b.Limits); err != nil {
		return nil, err
	}
	cfg := s.cfg.Sessions.Config()
	if spec.IdleTimeout > cfg.MaxIdleTimeout {
		return nil, invalid(ctx, "body.idle_timeout_ms", fmt.Sprintf("must be at most %d (the server's session_max_idle_timeout)", cfg.MaxIdleTimeout.Milliseconds()))
	}
	if spec.Lifetime > cfg.MaxLifetime {
		return nil, invalid(ctx, "body.max_lifetime_ms", fmt.Sprintf("must be at most %d (the server's session_max_lifetime)", cfg.MaxLifetime.Milliseconds()))
	}
	in.Body = SessionBody{}
	ss, err := s.cfg.Sessions.Create(ctx, spec)
	if err != nil {
		switch {
		case errors.Is(err, session.ErrTooMany), errors.Is(err, session.ErrEnded):
			return nil, s.sessionError(ctx, err)
		case errors.Is(err, runner.ErrWorkspaceFull):
			return nil, invalid(ctx, "body.files", "the files do not fit in the session's disk (limits.disk_bytes): "+err.Error())
		}
		return nil, s.runError(ctx, runner.Request{Language: b.Language}, err)
	}
	if err := s.claim(ctx, ss.ID); err != nil {
		_ = s.cfg.Sessions.Delete(ss.ID)
		return nil, err
	}
	return &struct{ Body SessionOut }{Body: sessionOut(ss)}, nil
}

func (s *Server) updateSession(ctx context.Context, in *struct {
	SessionPath
	Body SessionPatch
}) (*struct{ Body SessionOut }, error) {
	ss, err := s.session(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	b := &in.Body
	set, err := envList(ctx, "body.env", b.Env)
	if err != nil {
		return nil, err
	}
	for i, k := range b.UnsetEnv {
		if !envKeyRE.MatchString(k) {
			return nil, invalid(ctx, fmt.Sprintf("body.unset_env[%d]", i), "names are letters, digits and _ (not starting with a digit)")
		}
	}
	if b.Cwd != nil {
		if err := checkCwd(ctx, "body.cwd", *b.Cwd); err != nil {
			return nil, err
		}
	}
	var idle *time.Duration
	if b.IdleTimeoutMS != nil {
		d := ms(b.IdleTimeoutMS)
		if mx := s.cfg.Sessions.Config().MaxIdleTimeout; d > mx {
			return nil, invalid(ctx, "body.idle_timeout_ms", fmt.Sprintf("must be at most %d (the server's session_max_idle_timeout)", mx.Milliseconds()))
		}
		idle = &d
	}
	if err := ss.Update(set, b.UnsetEnv, b.Cwd, idle); err != nil {
		return nil, s.sessionError(ctx, err)
	}
	return &struct{ Body SessionOut }{Body: sessionOut(ss)}, nil
}

// commandLimits checks a command's own limits against the server's maxima.
func (s *Server) commandLimits(ctx context.Context, loc string, in *CommandLimitsIn) (runner.Limits, error) {
	if in == nil {
		return runner.Limits{}, nil
	}
	mx := s.cfg.Maxima
	mx.WallTime = max(mx.WallTime, s.cfg.CommandMaxWallTime)
	return s.limitsWithin(ctx, loc, &LimitsIn{WallTimeMS: in.WallTimeMS, CPUTimeMS: in.CPUTimeMS, OutputBytes: in.OutputBytes, OpenFiles: in.OpenFiles}, mx)
}

// commandSpec checks a command (of the HTTP API or of an attach message).
func (s *Server) commandSpec(ctx context.Context, loc string, argv []string, shell string, envm map[string]string, cwd string, lim *CommandLimitsIn) (session.CommandSpec, error) {
	spec := session.CommandSpec{Argv: argv, Shell: shell, Cwd: cwd}
	switch {
	case len(argv) == 0 && shell == "":
		return spec, invalid(ctx, loc+".command", "one of command and shell is required")
	case len(argv) > 0 && shell != "":
		return spec, invalid(ctx, loc+".shell", "give command or shell, not both")
	case len(argv) > maxArgs:
		return spec, invalid(ctx, loc+".command", fmt.Sprintf("at most %d arguments", maxArgs))
	case strings.ContainsRune(shell, 0) || len(shell) > runner.MaxArgBytes:
		return spec, invalid(ctx, loc+".shell", fmt.Sprintf("no NUL, at most %d bytes", runner.MaxArgBytes))
	}
	for i, a := range argv {
		if a == "" && i == 0 || strings.ContainsRune(a, 0) || len(a) > runner.MaxArgBytes {
			return spec, invalid(ctx, fmt.Sprintf("%s.command[%d]", loc, i), fmt.Sprintf("non-empty (the first), no NUL, at most %d bytes", runner.MaxArgBytes))
		}
	}
	var err error
	if spec.Env, err = envList(ctx, loc+".env", envm); err != nil {
		return spec, err
	}
	if err := checkCwd(ctx, loc+".cwd", cwd); err != nil {
		return spec, err
	}
	if spec.Limits, err = s.commandLimits(ctx, loc+".limits", lim); err != nil {
		return spec, err
	}
	return spec, nil
}

func (s *Server) startCommand(ctx context.Context, in *struct {
	SessionPath
	Body CommandBody
}) (*struct {
	Status int
	Body   any
}, error) {
	ss, err := s.session(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	b := &in.Body
	spec, err := s.commandSpec(ctx, "body", b.Command, b.Shell, b.Env, b.Cwd, b.Limits)
	if err != nil {
		return nil, err
	}
	spec.Stdin, spec.Background, spec.MergeOutput = []byte(b.Stdin), b.Background, b.MergeOutput
	done, err := s.takeBox(ctx)
	if err != nil {
		return nil, err
	}
	if b.Background {
		c, err := ss.Start(ctx, spec)
		if err != nil {
			done(0)
			return nil, s.sessionError(ctx, err)
		}
		go func() {
			// The key's box is given back, and its CPU time charged, when
			// the command ends.
			<-c.Done()
			res, _ := c.Result()
			done(cpuOf(res))
		}()
		return &struct {
			Status int
			Body   any
		}{http.StatusAccepted, CommandStarted{CommandID: c.ID, URL: "/v1/sessions/" + ss.ID + "/commands/" + c.ID}}, nil
	}
	// The result (both streams at their worst) is held until written:
	// counted in the memory budget, as a run's answer is.
	if t := ticketFrom(ctx); t != nil {
		out := spec.Limits.Output
		if out == 0 {
			out = ss.Info().Limits.Output
		}
		if err := s.reserve(ctx, inputFactor*t.bodyLen+2*out); err != nil {
			done(0)
			return nil, err
		}
	}
	s.setWriteDeadline(ctx, time.Time{})
	_, res, err := ss.Exec(ctx, spec)
	done(cpuOf(res))
	s.setWriteDeadline(ctx, time.Now().Add(s.cfg.WriteTimeout))
	if err != nil && res == nil {
		return nil, s.sessionError(ctx, err)
	}
	if err != nil {
		s.log.Error("session command failed", "request_id", requestID(ctx), "session", ss.ID, "err", err)
	}
	return &struct {
		Status int
		Body   any
	}{http.StatusOK, result.From(*res)}, nil
}

// sessionRun checks a /v1/run body for a session run: the language
// defaults to the session's; outputs are not collected. need is what the
// request will hold of the memory budget, as validate counts it.
func (s *Server) sessionRun(ctx context.Context, ss *session.Session, b *RunBody) (runner.Request, int64, error) {
	if b.Language == "" && len(b.Command) == 0 {
		b.Language = ss.Info().Language
	}
	if len(b.Outputs) > 0 {
		return runner.Request{}, 0, invalid(ctx, "body.outputs", "a session run leaves its files in the session: read them with GET /v1/sessions/{id}/files/{path}")
	}
	for _, l := range []struct {
		loc string
		in  *LimitsIn
	}{{"body.limits", b.Limits}, {"body.compile_limits", b.CompileLimits}} {
		if l.in != nil && (l.in.MemoryBytes != nil || l.in.Processes != nil || l.in.FileSizeBytes != nil || l.in.DiskBytes != nil) {
			return runner.Request{}, 0, invalid(ctx, l.loc, "memory_bytes, processes, file_size_bytes and disk_bytes are the session's, set when it is created")
		}
	}
	return s.validate(ctx, b)
}

func (s *Server) runInSession(ctx context.Context, in *struct {
	SessionPath
	Body RunBody
}) (*struct{ Body func(huma.Context) }, error) {
	ss, err := s.session(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	req, need, err := s.sessionRun(ctx, ss, &in.Body)
	if err != nil {
		return nil, err
	}
	in.Body = RunBody{}
	// The answer (every step's output, at its worst) is held as a run's
	// is: counted in the memory budget before the run.
	if err := s.reserve(ctx, need); err != nil {
		return nil, err
	}
	done, err := s.takeBox(ctx)
	if err != nil {
		return nil, err
	}
	s.setWriteDeadline(ctx, time.Time{})
	resp, err := ss.Run(ctx, req)
	done(resp.CPUTime())
	s.setWriteDeadline(ctx, time.Now().Add(s.cfg.WriteTimeout))
	if err != nil {
		if errors.Is(err, session.ErrBusy) || errors.Is(err, session.ErrEnded) {
			return nil, s.sessionError(ctx, err)
		}
		if fe := fileProblem(ctx, "body.files", err); fe != nil {
			return nil, fe
		}
		return nil, s.runError(ctx, req, err)
	}
	return &struct{ Body func(huma.Context) }{Body: func(hc huma.Context) { s.writeRun(hc, resp) }}, nil
}

// fileProblem maps a failed file operation in a box to its answer, or nil
// when err is not one.
func fileProblem(ctx context.Context, loc string, err error) *Problem {
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		return nil
	}
	var errno syscall.Errno
	errors.As(pe.Err, &errno)
	status, rule := http.StatusUnprocessableEntity, ""
	switch errno {
	case syscall.ENOENT:
		status, rule = http.StatusNotFound, "no such file or directory"
	case syscall.EACCES:
		rule = "only /box and /tmp (and paths relative to /box) are reachable"
	case syscall.ELOOP:
		rule = "a symlink in the path: file operations never follow one"
	case syscall.EXDEV:
		rule = "the path leaves /box or /tmp"
	case syscall.EISDIR:
		rule = "is a directory"
	case syscall.ENOTDIR:
		rule = "a component of the path is not a directory"
	case syscall.EINVAL:
		rule = "not a regular file, or not a valid path"
	case syscall.ENXIO:
		// open(2) of a FIFO without a reader (non-blocking, for writing),
		// of a socket, or of a device without its driver.
		rule = "not a regular file"
	case syscall.ETXTBSY:
		status, rule = http.StatusConflict, "the file is a program running in the session"
	case syscall.ENOTEMPTY:
		status, rule = http.StatusConflict, "the directory is not empty"
	case syscall.EFBIG:
		status, rule = http.StatusRequestEntityTooLarge, "larger than the session allows (its file_size_bytes, or this server's max_files_size per call)"
	case syscall.ENOSPC, syscall.EDQUOT:
		status, rule = http.StatusInsufficientStorage, "the session's disk is full (its disk_bytes)"
	case syscall.ENAMETOOLONG:
		rule = "a name or the path is too long"
	default:
		return nil
	}
	p := problem(ctx, status, path.Base(loc)+": "+rule, loc, rule).(*Problem)
	return p
}
