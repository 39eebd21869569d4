package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/runbox-dev/runbox/internal/job"
	"github.com/runbox-dev/runbox/internal/job/sign"
	"github.com/runbox-dev/runbox/internal/job/webhook"
	"github.com/runbox-dev/runbox/internal/keys"
	"github.com/runbox-dev/runbox/internal/result"
	"github.com/runbox-dev/runbox/internal/runner"
)

// CallbackIn is where a job's end is POSTed.
type CallbackIn struct {
	URL     string            `json:"url" minLength:"1" maxLength:"2048" doc:"An http or https URL. Loopback, link-local, private and the server's own addresses are refused (after DNS) unless the operator allows them (callback_allow)."`
	Headers map[string]string `json:"headers,omitempty" maxProperties:"16" doc:"Extra headers sent with the callback (not Host, Content-*, or webhook-*)."`
	Format  string            `json:"format,omitempty" maxLength:"32" doc:"A peer's callback instead of runbox's envelope: judge0 (a PUT of the Judge0 submission)."`
}

// JobBody is the body of POST /v1/jobs: a /v1/run body and a callback.
type JobBody struct {
	RunBody
	Callback *CallbackIn `json:"callback,omitempty"`
}

// JobAccepted answers a submit.
type JobAccepted struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	URL    string `json:"url"`
}

// JobList is a page of jobs.
type JobList struct {
	Jobs       []json.RawMessage `json:"jobs" doc:"Jobs as GET /v1/jobs/{id} shows them, without their results."`
	NextCursor string            `json:"next_cursor,omitempty" doc:"Pass as cursor for the next page; absent on the last."`
}

// KeyList is the body of GET /v1/keys.
type KeyList struct {
	Keys []sign.PublicKey `json:"keys"`
}

// JobPath names a job.
type JobPath struct {
	ID string `path:"id" maxLength:"64"`
}

// UseJobs serves the jobs API with engine e (set before Serve; until it
// is, the jobs routes answer 503).
func (s *Server) UseJobs(e *job.Engine) { s.jobs.Store(e) }

func (s *Server) engine(ctx context.Context) (*job.Engine, error) {
	e := s.jobs.Load()
	if e == nil {
		return nil, problem(ctx, http.StatusServiceUnavailable, "the jobs engine is not running", "", "unavailable")
	}
	return e, nil
}

func (s *Server) registerJobs(api huma.API) {
	huma.Register(api, huma.Operation{
		OperationID: "submit-job", Method: http.MethodPost, Path: "/v1/jobs", DefaultStatus: http.StatusAccepted,
		Summary:     "Submit a job",
		Description: "Queues a /v1/run request to run asynchronously. With an Idempotency-Key header, a repeated submit returns the first submit's job (200).",
		Errors:      []int{400, 413, 422, 429, 503}, MaxBodyBytes: s.cfg.MaxBodyBytes + 1, BodyReadTimeout: -1,
	}, s.submitJob)
	huma.Register(api, huma.Operation{
		OperationID: "get-job", Method: http.MethodGet, Path: "/v1/jobs/{id}", Summary: "Describe a job, with its result when done",
		Description: "id, status (queued, running, done, cancelled, failed), created_at, started_at, finished_at, node, runs, request_sha256, error (failed: why runbox could not run it), result (the /v1/run answer), signature, callback, webhook (attempts), url.",
		Errors:      []int{404, 429},
	}, s.getJob)
	huma.Register(api, huma.Operation{
		OperationID: "list-jobs", Method: http.MethodGet, Path: "/v1/jobs", Summary: "List jobs, newest first",
	}, s.listJobs)
	huma.Register(api, huma.Operation{
		OperationID: "cancel-job", Method: http.MethodDelete, Path: "/v1/jobs/{id}", Summary: "Cancel a job (a running box is killed)",
		Errors: []int{404, 409},
	}, s.cancelJob)
	huma.Register(api, huma.Operation{
		OperationID: "list-keys", Method: http.MethodGet, Path: "/v1/keys", Summary: "The nodes' public keys that sign job results",
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body KeyList }, error) {
		e, err := s.engine(ctx)
		if err != nil {
			return nil, err
		}
		keys, err := e.Keys(ctx)
		if err != nil {
			return nil, s.jobError(ctx, err)
		}
		return &struct{ Body KeyList }{Body: KeyList{Keys: keys}}, nil
	})
	s.mux.HandleFunc("GET /v1/jobs/{id}/events", s.jobEvents)
	s.mux.HandleFunc("GET /v1/jobs/{id}/files/{name...}", s.jobFile)
	idParam := &huma.Param{Name: "id", In: "path", Required: true, Schema: &huma.Schema{Type: "string"}}
	oa := api.OpenAPI()
	oa.AddOperation(&huma.Operation{OperationID: "job-events", Method: http.MethodGet, Path: "/v1/jobs/{id}/events",
		Summary:     "Server-Sent Events of a job: status changes and output chunks, from its first, until it ends",
		Description: "Each event is `event: status` or `event: output` with a JSON data line ({type, status, node, at, error} or {type, stream, data | data_base64}). A job that has ended gets one status event.",
		Parameters:  []*huma.Param{idParam},
		Responses: map[string]*huma.Response{"200": {Description: "The events.", Content: map[string]*huma.MediaType{
			"text/event-stream": {Schema: &huma.Schema{Type: "string"}}}}, "404": {Description: "No such job."}}})
	oa.AddOperation(&huma.Operation{OperationID: "get-job-file", Method: http.MethodGet, Path: "/v1/jobs/{id}/files/{name}",
		Summary: "One returned file of a done job, raw", Parameters: []*huma.Param{idParam,
			{Name: "name", In: "path", Required: true, Description: "The file's name as the result lists it (slashes allowed).", Schema: &huma.Schema{Type: "string"}}},
		Responses: map[string]*huma.Response{"200": {Description: "The file's bytes.", Content: map[string]*huma.MediaType{
			"application/octet-stream": {Schema: &huma.Schema{Type: "string", Format: "binary"}}}}, "404": {Description: "No such job or file."}}})
}

func (s *Server) submitJob(ctx context.Context, in *struct {
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255"`
	RawBody        []byte
	Body           JobBody
}) (*struct {
	Status   int
	Location string `header:"Location"`
	Replayed string `header:"Idempotent-Replayed"`
	Body     JobAccepted
}, error) {
	e, err := s.engine(ctx)
	if err != nil {
		return nil, err
	}
	if _, _, err := s.validate(ctx, &in.Body.RunBody); err != nil {
		return nil, err
	}
	var cb *job.Callback
	if c := in.Body.Callback; c != nil {
		if err := s.cfg.CallbackPolicy.CheckURL(c.URL); err != nil {
			return nil, invalid(ctx, "body.callback.url", err.Error())
		}
		if err := webhook.ValidHeaders(c.Headers); err != nil {
			return nil, invalid(ctx, "body.callback.headers", err.Error())
		}
		if c.Format != "" && !e.HasFormat(c.Format) {
			return nil, invalid(ctx, "body.callback.format", "a callback format this server has (judge0), or none")
		}
		cb = &job.Callback{URL: c.URL, Headers: c.Headers, Format: c.Format}
	}
	rec, existed, err := e.Submit(ctx, in.RawBody, cb, in.IdempotencyKey, ownerOf(ctx))
	if err != nil {
		return nil, s.jobError(ctx, err)
	}
	out := &struct {
		Status   int
		Location string `header:"Location"`
		Replayed string `header:"Idempotent-Replayed"`
		Body     JobAccepted
	}{Status: http.StatusAccepted, Location: "/v1/jobs/" + rec.ID, Body: JobAccepted{ID: rec.ID, Status: rec.Status, URL: "/v1/jobs/" + rec.ID}}
	if existed {
		out.Status, out.Replayed = http.StatusOK, "true"
	}
	return out, nil
}

// jobError maps the engine's errors to answers.
func (s *Server) jobError(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, job.ErrNotFound):
		return problem(ctx, http.StatusNotFound, "no such job", "path.id", "not a job of this server, or expired")
	case errors.Is(err, job.ErrFinished):
		return problem(ctx, http.StatusConflict, "the job has already finished", "path.id", "only a queued or running job can be cancelled")
	case errors.Is(err, job.ErrIdempotencyMismatch):
		return problem(ctx, http.StatusUnprocessableEntity, err.Error(), "header.Idempotency-Key", "a key names one request; use a new key for a new request")
	case errors.Is(err, job.ErrQueueFull):
		return unavailable(ctx, "the job queue is full; retry later")
	case ctx.Err() != nil:
		return problem(ctx, 499, "client went away", "", "cancelled")
	}
	s.log.Error("jobs", "request_id", requestID(ctx), "err", err)
	return unavailable(ctx, "the job store is unavailable; retry later")
}

func (s *Server) getJob(ctx context.Context, in *struct {
	JobPath
	Wait int `query:"wait" minimum:"0" maximum:"60" doc:"Seconds to wait for the job to end before answering (a long poll; at most write_timeout − 5 s)."`
}) (*struct{ Body json.RawMessage }, error) {
	e, err := s.engine(ctx)
	if err != nil {
		return nil, err
	}
	var rec job.Record
	if in.Wait > 0 {
		// The answer must be written within write_timeout of the request:
		// the wait leaves it 5 s (a long poll may always answer early).
		d := min(time.Duration(in.Wait)*time.Second, s.cfg.WriteTimeout-5*time.Second)
		rec, err = e.Wait(ctx, in.ID, ownerOf(ctx), max(d, time.Second))
	} else {
		rec, err = e.Get(ctx, in.ID, ownerOf(ctx))
	}
	if err != nil {
		return nil, s.jobError(ctx, err)
	}
	res, err := e.Result(ctx, rec)
	if err != nil && !errors.Is(err, job.ErrNotFound) {
		return nil, s.jobError(ctx, err)
	}
	// The result is held until written; it counts in the memory budget.
	n := 2 * int64(len(res))
	if !s.budget.take(n) {
		return nil, busy(ctx, "the server is holding as much as its memory budget allows; retry later")
	}
	defer s.budget.give(n)
	return &struct{ Body json.RawMessage }{Body: job.View(rec, res)}, nil
}

func (s *Server) listJobs(ctx context.Context, in *struct {
	Status string `query:"status" enum:"queued,running,done,cancelled,failed" doc:"Only jobs of this status."`
	Limit  int    `query:"limit" minimum:"1" maximum:"100" default:"20"`
	Cursor string `query:"cursor" maxLength:"64" doc:"next_cursor of the previous page."`
}) (*struct{ Body JobList }, error) {
	e, err := s.engine(ctx)
	if err != nil {
		return nil, err
	}
	if in.Cursor != "" && !job.ValidID(in.Cursor) {
		return nil, invalid(ctx, "query.cursor", "a next_cursor this server gave")
	}
	page, next, err := e.List(ctx, in.Status, ownerOf(ctx), in.Limit, in.Cursor)
	if err != nil {
		return nil, s.jobError(ctx, err)
	}
	out := &struct{ Body JobList }{Body: JobList{Jobs: []json.RawMessage{}, NextCursor: next}}
	for _, r := range page {
		out.Body.Jobs = append(out.Body.Jobs, job.View(r, nil))
	}
	return out, nil
}

func (s *Server) cancelJob(ctx context.Context, in *JobPath) (*struct{ Body json.RawMessage }, error) {
	e, err := s.engine(ctx)
	if err != nil {
		return nil, err
	}
	rec, err := e.Cancel(ctx, in.ID, ownerOf(ctx))
	if err != nil {
		return nil, s.jobError(ctx, err)
	}
	return &struct{ Body json.RawMessage }{Body: job.View(rec, nil)}, nil
}

// jobFile serves one returned file of a done job.
func (s *Server) jobFile(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	e, err := s.engine(ctx)
	if err != nil {
		writeProblem(w, err.(*Problem))
		return
	}
	rec, err := e.Get(ctx, r.PathValue("id"), ownerOf(ctx))
	if err != nil {
		writeProblem(w, s.jobError(ctx, err).(*Problem))
		return
	}
	res, err := e.Result(ctx, rec)
	if err != nil && !errors.Is(err, job.ErrNotFound) {
		writeProblem(w, s.jobError(ctx, err).(*Problem))
		return
	}
	var out struct {
		Files []FileOut `json:"files"`
	}
	if len(res) > 0 {
		if err := json.Unmarshal(res, &out); err != nil {
			writeProblem(w, s.jobError(ctx, err).(*Problem))
			return
		}
	}
	name := r.PathValue("name")
	for _, f := range out.Files {
		if f.Name == name && f.NameBase64 == "" {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", strconv.Itoa(len(f.Content)))
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Header().Set("Content-Disposition", "attachment")
			_, _ = w.Write(f.Content)
			return
		}
	}
	writeProblem(w, problem(ctx, http.StatusNotFound, "no such file", "path.name", "a name in the done job's result.files").(*Problem))
}

// jobEvents serves a job's events as Server-Sent Events.
func (s *Server) jobEvents(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	e, err := s.engine(ctx)
	if err != nil {
		writeProblem(w, err.(*Problem))
		return
	}
	id := r.PathValue("id")
	if _, err := e.Get(ctx, id, ownerOf(ctx)); err != nil {
		writeProblem(w, s.jobError(ctx, err).(*Problem))
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(b []byte) error {
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	err = e.Events(ctx, id, ownerOf(ctx), func(ev job.Event) error {
		b, _ := json.Marshal(ev)
		return send(fmt.Appendf(nil, "event: %s\ndata: %s\n\n", ev.Type, b))
	}, func() error { return send([]byte(": keep-alive\n\n")) })
	if err != nil && ctx.Err() == nil {
		s.log.Info("job events ended", "request_id", requestID(ctx), "job", id, "err", err)
	}
}

// RunJob is the jobs' Work function: a job's request, validated again (the
// server's settings may have changed while it waited), held in the memory
// budget and run when a box is free, its output streamed to out.
func (s *Server) RunJob(ctx context.Context, request []byte, out func(stream string, p []byte)) ([]byte, error) {
	var body JobBody
	if err := json.Unmarshal(request, &body); err != nil {
		return nil, fmt.Errorf("decoding the request: %w", err)
	}
	// The job runs as the key that submitted it: its limits and quota.
	if owner := job.Owner(ctx); owner != "" {
		k := s.keys.Load()
		c, ok := (*keys.Caller)(nil), false
		if k != nil {
			c, ok = k.kr.ByName(owner)
		}
		if !ok {
			return nil, fmt.Errorf("the key %s that submitted the job is revoked", owner)
		}
		ctx = context.WithValue(ctx, callerKey{}, c)
	}
	req, need, err := s.validate(ctx, &body.RunBody)
	if err != nil {
		var p *Problem
		if errors.As(err, &p) {
			return nil, fmt.Errorf("the request is not valid on this server now: %s", p.Detail)
		}
		return nil, err
	}
	body = JobBody{}
	for !s.budget.take(need) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	defer s.budget.give(need)
	req.Stream = &runner.Stream{Stdout: outWriter{out, "stdout"}, Stderr: outWriter{out, "stderr"}}
	done, err := s.waitBox(ctx)
	if err != nil {
		return nil, err
	}
	release, err := s.queue.take(ctx, s.metrics)
	if err != nil {
		done(0)
		return nil, err
	}
	start := time.Now()
	resp, err := s.run.Run(ctx, req)
	release()
	done(resp.CPUTime())
	if err != nil {
		return nil, err
	}
	s.metrics.observe(resp, time.Since(start))
	var buf bytes.Buffer
	w := result.NewWriter(&buf)
	encodeRun(w, resp)
	if err := w.Flush(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type outWriter struct {
	out    func(string, []byte)
	stream string
}

func (o outWriter) Write(p []byte) (int, error) {
	o.out(o.stream, p)
	return len(p), nil
}
