// Package api is runbox's HTTP interface: it decodes and validates requests
// (every bad request gets a 4xx problem+json body naming the field and the
// rule), admits them through a bounded queue of boxes, hands them to the
// runner, and maps results and failures to HTTP. It holds its clients to
// bounds: connections, read, write and idle time, the memory a request may
// hold from its first body byte to its answer's last (budget), and it
// streams answers rather than build them. It never touches the kernel and
// never imports the jail.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/runbox-dev/runbox/internal/env"
	"github.com/runbox-dev/runbox/internal/job"
	"github.com/runbox-dev/runbox/internal/job/webhook"
	"github.com/runbox-dev/runbox/internal/relay"
	"github.com/runbox-dev/runbox/internal/runner"
	"github.com/runbox-dev/runbox/internal/session"
)

// Runner is what the API needs of the runner.
type Runner interface {
	Run(ctx context.Context, req runner.Request) (*runner.Response, error)
}

var _ Runner = (*runner.Runner)(nil)

// Config bounds what one request may ask, and what all of them may hold.
type Config struct {
	Version       string
	CgroupVersion string
	Defaults      runner.Limits // per-request defaults
	Maxima        runner.Limits // a request may raise limits up to these, never beyond
	MaxBoxes      int           // requests served at once (each runs one box at a time)
	QueueLength   int           // requests that may wait for a box
	QueueTimeout  time.Duration
	MaxBodyBytes  int64
	MaxFiles      int   // at most MaxFilesCeiling
	MaxFilesBytes int64 // decoded content of all files
	MaxCases      int   // at most MaxCasesCeiling
	CacheBytes    int64

	// MaxConnections bounds the connections held open at once.
	MaxConnections int
	// ReadTimeout bounds the arrival of a request's headers and body;
	// WriteTimeout the writing of an answer (for a run, from its end);
	// IdleTimeout a keep-alive connection's wait for its next request.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxResponseBytes bounds the output one answer may carry, counted
	// before the run at its worst: compile output, 2 streams × the output
	// limit × each run, and returned files.
	MaxResponseBytes int64
	// MemoryBudget bounds what all requests hold at once, from their first
	// body byte to their answer's last: bodies being read and decoded,
	// then each admitted request's input and worst-case output.
	MemoryBudget int64

	// Sessions, when set, serves the sessions API (/v1/sessions…).
	Sessions *session.Manager
	// CommandMaxWallTime is the most wall-clock time a session's command
	// may ask (zero: Maxima.WallTime); its other limits keep Maxima.
	CommandMaxWallTime time.Duration

	// Jobs serves the jobs API (/v1/jobs…, /v1/keys); its engine is
	// given by UseJobs. CallbackPolicy checks callback URLs at submit.
	Jobs           bool
	CallbackPolicy *webhook.Policy
	// Node is this node's name (jobs, and the relay between nodes).
	Node string
}

// Check reports settings the server cannot work with: a bound that is not
// positive, a list above its schema ceiling, or a memory budget too small
// for a largest body to be decoded, or for a request of max_response to be
// held.
func (c Config) Check() error {
	switch {
	case c.MaxBoxes < 1 || c.QueueLength < 0:
		return errors.New("max_boxes must be at least 1 and queue_length not negative")
	case c.MaxFiles < 1 || c.MaxFiles > MaxFilesCeiling:
		return fmt.Errorf("max_files must be 1 to %d", MaxFilesCeiling)
	case c.MaxCases < 1 || c.MaxCases > MaxCasesCeiling:
		return fmt.Errorf("max_cases must be 1 to %d", MaxCasesCeiling)
	case c.MaxConnections < 1:
		return errors.New("max_connections must be at least 1")
	case c.ReadTimeout <= 0 || c.WriteTimeout <= 0 || c.IdleTimeout <= 0:
		return errors.New("read_timeout, write_timeout and idle_timeout must be positive")
	case c.MaxResponseBytes < 1:
		return errors.New("max_response must be positive")
	case c.MemoryBudget < c.MaxResponseBytes+inputFactor*c.MaxBodyBytes || c.MemoryBudget < decodeFactor*c.MaxBodyBytes:
		return fmt.Errorf("memory_budget must be at least max_response + %d × max_body, and %d × max_body (%d bytes here)",
			inputFactor, decodeFactor, max(c.MaxResponseBytes+inputFactor*c.MaxBodyBytes, decodeFactor*c.MaxBodyBytes))
	}
	return nil
}

// Schema ceilings of the request's lists. The configured MaxFiles and
// MaxCases may only be lower; the schema's own maxItems on the other lists
// are constants too (maxArgs for argv lists).
const (
	MaxFilesCeiling = 1024
	MaxCasesCeiling = 1024
	maxArgs         = 64 // maxItems of command, args and a case's args
)

// Server is the HTTP API.
type Server struct {
	cfg       Config
	run       Runner
	envs      *env.Registry
	log       *slog.Logger
	queue     *queue
	budget    *budget
	conns     *connLimit
	hs        *http.Server
	maxValues int // JSON values a valid body can hold
	hapi      huma.API
	metrics   *Metrics
	mux       *http.ServeMux // huma's routes
	root      *http.ServeMux // the run route's admission, then mux
	jobs      atomic.Pointer[job.Engine]
	relay     atomic.Pointer[relay.Relay]
	keys      atomic.Pointer[keyring]
}

// New builds the API.
func New(cfg Config, r Runner, envs *env.Registry, m *Metrics, log *slog.Logger) *Server {
	s := &Server{cfg: cfg, run: r, envs: envs, log: log, metrics: m, mux: http.NewServeMux(), root: http.NewServeMux(),
		queue:     newQueue(cfg.MaxBoxes, cfg.QueueLength, cfg.QueueTimeout),
		budget:    &budget{max: cfg.MemoryBudget},
		conns:     newConnLimit(cfg.MaxConnections, m),
		maxValues: jsonValues(cfg.MaxFiles, cfg.MaxCases)}
	hc := huma.DefaultConfig("runbox", cfg.Version)
	hc.Info.Description = "Runs untrusted code in a Linux sandbox and returns its output, verdict and resource usage."
	hc.CreateHooks = nil // no $schema links in bodies
	hc.OpenAPIPath = "/openapi"
	hc.DocsPath = "" // /docs is served offline by internal/web
	hapi := humago.New(s.mux, hc)
	s.register(hapi)
	if cfg.Sessions != nil {
		s.registerSessions(hapi)
		s.registerFiles(hapi)
		s.registerStreams(hapi)
		// Bodies of JSON calls that may carry files or run a program are
		// read under the memory budget, as a run's are.
		for _, p := range []string{"POST /v1/sessions", "POST /v1/sessions/{id}/commands", "POST /v1/sessions/{id}/run"} {
			s.root.Handle(p, s.admitRun(s.mux))
		}
	}
	if cfg.Jobs {
		s.registerJobs(hapi)
		s.root.Handle("POST /v1/jobs", s.admitRun(s.mux))
	}
	s.mux.Handle("GET /metrics", m.Handler())
	s.root.Handle("POST /v1/run", s.admitRun(s.mux))
	s.root.Handle("/", s.mux)
	s.hs = s.newHTTPServer()
	return s
}

// Mount serves h under prefix (a compatibility API), the prefix stripped.
// It must be called before Serve.
func (s *Server) Mount(prefix string, h http.Handler) {
	s.root.Handle(prefix+"/", http.StripPrefix(prefix, h))
}

// Handler is the API with request ids, API keys and request logs.
func (s *Server) Handler() http.Handler {
	return s.wrap(func(w http.ResponseWriter, r *http.Request) {
		if !s.forward(w, r) {
			s.root.ServeHTTP(w, r)
		}
	})
}

// Guard is h (a compatibility API on a listener of its own) with the
// API's request ids, API keys and request logs.
func (s *Server) Guard(h http.Handler) http.Handler { return s.wrap(h.ServeHTTP) }

// wrap gives next a request id, checks its API key, and logs it.
func (s *Server) wrap(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
		r, ok := s.authenticate(sw, r)
		if ok {
			next(sw, r)
		}
		s.log.Info("request", "request_id", id, "method", r.Method, "path", r.URL.Path,
			"status", sw.status, "duration_ms", time.Since(start).Milliseconds(), "remote", r.RemoteAddr, "key", ownerOf(r.Context()))
	})
}

// maxEchoBytes bounds a value echoed back in an error detail.
const maxEchoBytes = 256

type requestIDKey struct{}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection's deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) register(api huma.API) {
	huma.Register(api, huma.Operation{
		OperationID: "list-environments", Method: http.MethodGet, Path: "/v1/environments",
		Summary: "List the language environments",
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body []Environment }, error) {
		out := &struct{ Body []Environment }{Body: []Environment{}}
		for _, e := range s.envs.List() {
			out.Body = append(out.Body, Environment{Name: e.Name, Version: e.VersionText, Aliases: append([]string{}, e.Aliases...),
				Compiled: e.Compiled(), Available: e.Available, Source: e.Source, Image: e.Image})
		}
		return out, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "run", Method: http.MethodPost, Path: "/v1/run",
		Summary:     "Run a program",
		Description: "Compiles once (when the language compiles), then runs the program once, or once per case, each in a fresh box.",
		// admitRun has read the body already (within max_body and
		// read_timeout); huma reads it from memory, one byte more allowed
		// because huma calls a body of exactly its maximum too large.
		MaxBodyBytes:    s.cfg.MaxBodyBytes + 1,
		BodyReadTimeout: -1,
		Errors:          []int{400, 408, 413, 415, 422, 429, 500},
		// The answer is streamed (see writeRun); its schema is declared
		// here since the handler's output type is a function.
		Responses: map[string]*huma.Response{"200": {Description: "The program's results.", Content: map[string]*huma.MediaType{
			"application/json": {Schema: api.OpenAPI().Components.Schemas.Schema(reflect.TypeOf(RunResponse{}), true, "RunResponse")},
		}}},
	}, s.handleRun)
	huma.Register(api, huma.Operation{
		OperationID: "healthz", Method: http.MethodGet, Path: "/healthz", Summary: "Liveness",
	}, func(ctx context.Context, _ *struct{}) (*struct {
		Body struct {
			Status string `json:"status"`
		}
	}, error) {
		out := &struct {
			Body struct {
				Status string `json:"status"`
			}
		}{}
		out.Body.Status = "ok"
		return out, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "info", Method: http.MethodGet, Path: "/v1/info", Summary: "Version, limits and capacity",
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body Info }, error) {
		return &struct{ Body Info }{Body: Info{
			Version: s.cfg.Version, CgroupVersion: s.cfg.CgroupVersion,
			Defaults: limitsOut(s.cfg.Defaults), Maxima: limitsOut(s.cfg.Maxima),
			MaxBoxes: s.cfg.MaxBoxes, QueueLength: s.cfg.QueueLength, MaxBodyBytes: s.cfg.MaxBodyBytes,
			MaxFiles: s.cfg.MaxFiles, MaxFilesBytes: s.cfg.MaxFilesBytes, MaxCases: s.cfg.MaxCases,
			MaxResponseBytes: s.cfg.MaxResponseBytes, CompileCacheMB: s.cfg.CacheBytes >> 20,
		}}, nil
	})
}

func limitsOut(l runner.Limits) LimitsOut {
	return LimitsOut{WallTimeMS: l.WallTime.Milliseconds(), CPUTimeMS: l.CPUTime.Milliseconds(), MemoryBytes: l.Memory,
		Processes: int64(l.Processes), FileSizeBytes: l.FileSize, OpenFiles: int64(l.OpenFiles), OutputBytes: l.Output, DiskBytes: l.Disk}
}

func (s *Server) handleRun(ctx context.Context, in *struct{ Body RunBody }) (*struct{ Body func(huma.Context) }, error) {
	req, need, err := s.validate(ctx, &in.Body)
	if err != nil {
		return nil, err
	}
	// What the request holds from now on is req; drop the decoded
	// strings it does not share.
	in.Body = RunBody{}
	if err := s.reserve(ctx, need); err != nil {
		return nil, err
	}
	done, err := s.takeBox(ctx)
	if err != nil {
		return nil, err
	}
	// Waiting and running take their time; the answer gets its own
	// write deadline once they are done.
	s.setWriteDeadline(ctx, time.Time{})
	release, err := s.queue.acquire(ctx, s.metrics)
	if err != nil {
		done(0)
		s.setWriteDeadline(ctx, time.Now().Add(s.cfg.WriteTimeout))
		if errors.Is(err, errQueueFull) {
			return nil, busy(ctx, "all boxes are busy and the queue is full; retry later")
		}
		return nil, problem(ctx, 499, "client went away", "", "cancelled")
	}
	start := time.Now()
	resp, err := s.run.Run(ctx, req)
	// The box is free; writing the answer, at the client's pace, is not
	// the boxes' business.
	release()
	done(resp.CPUTime())
	s.setWriteDeadline(ctx, time.Now().Add(s.cfg.WriteTimeout))
	if err != nil {
		return nil, s.runError(ctx, req, err)
	}
	s.metrics.observe(resp, time.Since(start))
	return &struct{ Body func(huma.Context) }{Body: func(hc huma.Context) { s.writeRun(hc, resp) }}, nil
}

// reserve makes the request's admission ticket hold need bytes of the
// memory budget (a request that came without one holds nothing), or
// answers 429.
func (s *Server) reserve(ctx context.Context, need int64) error {
	t := ticketFrom(ctx)
	if t == nil {
		return nil
	}
	if !t.resize(need) {
		return busy(ctx, "the server is holding as many requests as its memory budget allows; retry later")
	}
	s.metrics.reserved.Set(float64(s.budget.inUse()))
	return nil
}

// setWriteDeadline sets the write deadline of the request's connection.
func (s *Server) setWriteDeadline(ctx context.Context, d time.Time) {
	if t := ticketFrom(ctx); t != nil && t.rc != nil {
		_ = t.rc.SetWriteDeadline(d)
	}
}

// runError maps a failed run to its answer: the request's own fault is a
// 422 naming the field, anything else is runbox's (500, logged).
func (s *Server) runError(ctx context.Context, req runner.Request, err error) error {
	switch {
	case errors.Is(err, env.ErrUnknown):
		return problem(ctx, http.StatusUnprocessableEntity, "unknown language", "body.language", err.Error())
	case errors.Is(err, runner.ErrUnavailable):
		return problem(ctx, http.StatusUnprocessableEntity, "language not available on this server", "body.language", err.Error())
	case errors.Is(err, env.ErrUnsafeStem):
		return invalid(ctx, mainLocation(req), err.Error())
	case errors.Is(err, runner.ErrWorkspaceFull):
		return invalid(ctx, "body.files", "the files do not fit in the box's disk (limits.disk_bytes): "+err.Error())
	case errors.Is(err, runner.ErrSpecTooLarge):
		return invalid(ctx, specLocation(req), fmt.Sprintf("the argv and environment exceed what a box accepts (%d bytes in all, %d per argument): %v",
			runner.MaxConfigBytes, runner.MaxArgBytes, err))
	case ctx.Err() != nil:
		return problem(ctx, 499, "client went away", "", "cancelled")
	}
	s.log.Error("run failed", "request_id", requestID(ctx), "err", err)
	return problem(ctx, http.StatusInternalServerError, "runbox failed to run the request", "", "internal error")
}

// mainLocation is the field that names a request's main file.
func mainLocation(req runner.Request) string {
	if req.Main != "" {
		return "body.main"
	}
	return "body.files[0].name"
}

// specLocation is the field most likely to have made a box's argv and
// environment too large (validation counts them first; this is a
// fallback for a box that counted otherwise).
func specLocation(req runner.Request) string {
	size := func(l []string) (n int) {
		for _, s := range l {
			n += len(s)
		}
		return n
	}
	loc, most := "body.command", size(req.Command)
	if n := size(req.Args); n > most {
		loc, most = "body.args", n
	}
	if n := size(req.Env); n > most {
		loc, most = "body.env", n
	}
	for i, c := range req.Cases {
		if n := size(c.Args); n > most {
			loc, most = fmt.Sprintf("body.cases[%d].args", i), n
		}
	}
	if len(req.Command) == 0 {
		names := 0
		for _, f := range req.Files {
			names += len(f.Name)
		}
		if names > most {
			loc = "body.files"
		}
	}
	return loc
}
