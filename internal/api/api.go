// Package api is runbox's HTTP interface: it decodes and validates requests
// (every bad request gets a 4xx problem+json body naming the field and the
// rule), admits them through a bounded queue of boxes, hands them to the
// runner, and maps results and failures to HTTP. It never touches the
// kernel and never imports the jail.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/runbox-dev/runbox/internal/env"
	"github.com/runbox-dev/runbox/internal/result"
	"github.com/runbox-dev/runbox/internal/runner"
)

// Runner is what the API needs of the runner.
type Runner interface {
	Run(ctx context.Context, req runner.Request) (*runner.Response, error)
}

var _ Runner = (*runner.Runner)(nil)

// Config bounds what one request may ask.
type Config struct {
	Version       string
	CgroupVersion string
	Defaults      runner.Limits // per-request defaults
	Maxima        runner.Limits // a request may raise limits up to these, never beyond
	MaxBoxes      int           // requests served at once (each runs one box at a time)
	QueueLength   int           // requests that may wait for a box
	QueueTimeout  time.Duration
	MaxBodyBytes  int64
	MaxFiles      int
	MaxFilesBytes int64 // decoded content of all files
	MaxCases      int
	CacheBytes    int64
}

// Server is the HTTP API.
type Server struct {
	cfg     Config
	run     Runner
	envs    *env.Registry
	log     *slog.Logger
	queue   *queue
	metrics *Metrics
	mux     *http.ServeMux
}

// New builds the API.
func New(cfg Config, r Runner, envs *env.Registry, m *Metrics, log *slog.Logger) *Server {
	s := &Server{cfg: cfg, run: r, envs: envs, log: log, metrics: m, mux: http.NewServeMux(),
		queue: newQueue(cfg.MaxBoxes, cfg.QueueLength, cfg.QueueTimeout)}
	hc := huma.DefaultConfig("runbox", cfg.Version)
	hc.Info.Description = "Runs untrusted code in a Linux sandbox and returns its output, verdict and resource usage."
	hc.CreateHooks = nil // no $schema links in bodies
	hc.OpenAPIPath = "/openapi"
	hapi := humago.New(s.mux, hc)
	s.register(hapi)
	s.mux.Handle("GET /metrics", m.Handler())
	return s
}

// Handler is the API with request ids and request logs.
func (s *Server) Handler() http.Handler {
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
		s.mux.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
		s.log.Info("request", "request_id", id, "method", r.Method, "path", r.URL.Path,
			"status", sw.status, "duration_ms", time.Since(start).Milliseconds(), "remote", r.RemoteAddr)
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

// Problem is an RFC 9457 problem with the request id, so that a client's
// report can be matched with the server's log line.
type Problem struct {
	huma.ErrorModel
	RequestID string `json:"request_id,omitempty"`
	// RetryAfter is sent as the Retry-After header of 429 answers.
	RetryAfter int `json:"-"`
}

// GetHeaders adds Retry-After to queue-full answers.
func (p *Problem) GetHeaders() http.Header {
	if p.RetryAfter > 0 {
		return http.Header{"Retry-After": {strconv.Itoa(p.RetryAfter)}}
	}
	return nil
}

func init() {
	// Huma builds every error through this hook; it is set once, to the
	// same function, for the whole process.
	huma.NewErrorWithContext = func(ctx huma.Context, status int, msg string, errs ...error) huma.StatusError {
		base := huma.NewError(status, msg, errs...).(*huma.ErrorModel)
		for _, d := range base.Errors {
			// Huma echoes the offending value; for an unknown field or a
			// malformed body that is the whole request. Keep only small ones.
			if d != nil && d.Value != nil {
				if b, err := json.Marshal(d.Value); err != nil || len(b) > maxEchoBytes {
					d.Value = nil
				}
			}
		}
		p := &Problem{ErrorModel: *base}
		if ctx != nil {
			p.RequestID = requestID(ctx.Context())
		}
		return p
	}
}

// problem makes an error with one field detail.
func problem(ctx context.Context, status int, msg, location, rule string) error {
	p := &Problem{ErrorModel: huma.ErrorModel{Status: status, Title: http.StatusText(status), Detail: msg,
		Errors: []*huma.ErrorDetail{{Location: location, Message: rule}}}, RequestID: requestID(ctx)}
	return p
}

func (s *Server) register(api huma.API) {
	huma.Register(api, huma.Operation{
		OperationID: "list-environments", Method: http.MethodGet, Path: "/v1/environments",
		Summary: "List the language environments",
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body []Environment }, error) {
		out := &struct{ Body []Environment }{Body: []Environment{}}
		for _, e := range s.envs.List() {
			out.Body = append(out.Body, Environment{Name: e.Name, Version: e.VersionText, Aliases: append([]string{}, e.Aliases...),
				Compiled: e.Compiled(), Available: e.Available})
		}
		return out, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "run", Method: http.MethodPost, Path: "/v1/run",
		Summary:      "Run a program",
		Description:  "Compiles once (when the language compiles), then runs the program once, or once per case, each in a fresh box.",
		MaxBodyBytes: s.cfg.MaxBodyBytes,
		Errors:       []int{400, 413, 415, 422, 429, 500},
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
			MaxFiles: s.cfg.MaxFiles, MaxFilesBytes: s.cfg.MaxFilesBytes, CompileCacheMB: s.cfg.CacheBytes >> 20,
		}}, nil
	})
}

func limitsOut(l runner.Limits) LimitsOut {
	return LimitsOut{WallTimeMS: l.WallTime.Milliseconds(), CPUTimeMS: l.CPUTime.Milliseconds(), MemoryBytes: l.Memory,
		Processes: int64(l.Processes), FileSizeBytes: l.FileSize, OpenFiles: int64(l.OpenFiles), OutputBytes: l.Output, DiskBytes: l.Disk}
}

func (s *Server) handleRun(ctx context.Context, in *struct{ Body RunBody }) (*struct{ Body RunResponse }, error) {
	req, err := s.validate(ctx, &in.Body)
	if err != nil {
		return nil, err
	}
	release, err := s.queue.acquire(ctx, s.metrics)
	if err != nil {
		if errors.Is(err, errQueueFull) {
			p := problem(ctx, http.StatusTooManyRequests, "all boxes are busy and the queue is full; retry later", "", "capacity").(*Problem)
			p.Errors = nil
			p.RetryAfter = 1
			return nil, p
		}
		return nil, problem(ctx, 499, "client went away", "", "cancelled")
	}
	defer release()
	start := time.Now()
	resp, err := s.run.Run(ctx, req)
	if err != nil {
		switch {
		case errors.Is(err, env.ErrUnknown):
			return nil, problem(ctx, http.StatusUnprocessableEntity, "unknown language", "body.language", err.Error())
		case errors.Is(err, runner.ErrUnavailable):
			return nil, problem(ctx, http.StatusUnprocessableEntity, "language not available on this server", "body.language", err.Error())
		case ctx.Err() != nil:
			return nil, problem(ctx, 499, "client went away", "", "cancelled")
		}
		s.log.Error("run failed", "request_id", requestID(ctx), "err", err)
		return nil, problem(ctx, http.StatusInternalServerError, "runbox failed to run the request", "", "internal error")
	}
	s.metrics.observe(resp, time.Since(start))
	return &struct{ Body RunResponse }{Body: toResponse(resp)}, nil
}

func toResponse(r *runner.Response) RunResponse {
	out := RunResponse{Language: r.Language, Version: r.Version, Cached: r.Cached, FilesTruncated: r.FilesTruncated}
	if r.Compile != nil {
		c := result.From(*r.Compile)
		out.Compile = &c
	}
	if r.Run != nil {
		c := result.From(*r.Run)
		out.Run = &c
	}
	for _, c := range r.Cases {
		out.Cases = append(out.Cases, CaseResult{Result: result.From(c.Result), Verdict: c.Verdict})
	}
	for _, f := range r.Files {
		out.Files = append(out.Files, FileOut{Name: f.Name, Size: len(f.Content), Content: f.Content})
	}
	return out
}

// queue admits at most n requests at once and lets at most wait more wait,
// each for at most timeout.
type queue struct {
	slots   chan struct{}
	waiting atomic.Int64
	wait    int64
	timeout time.Duration
}

var errQueueFull = errors.New("queue full")

func newQueue(n, wait int, timeout time.Duration) *queue {
	return &queue{slots: make(chan struct{}, n), wait: int64(wait), timeout: timeout}
}

// acquire takes a slot; release must be called exactly once after a
// successful acquire, and never after a failed one.
func (q *queue) acquire(ctx context.Context, m *Metrics) (release func(), err error) {
	release = func() {
		<-q.slots
		m.boxes.Dec()
	}
	select {
	case q.slots <- struct{}{}:
		m.boxes.Inc()
		return release, nil
	default:
	}
	if q.waiting.Add(1) > q.wait {
		q.waiting.Add(-1)
		return nil, errQueueFull
	}
	m.queue.Inc()
	defer func() {
		q.waiting.Add(-1)
		m.queue.Dec()
	}()
	t := time.NewTimer(q.timeout)
	defer t.Stop()
	select {
	case q.slots <- struct{}{}:
		m.boxes.Inc()
		return release, nil
	case <-t.C:
		return nil, errQueueFull
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
