package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Job statuses.
const (
	JobQueued    = "queued"
	JobRunning   = "running"
	JobDone      = "done"
	JobCancelled = "cancelled"
	JobFailed    = "failed"
)

// Callback is where the server POSTs a job's end.
type Callback struct {
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	Format  string            `json:"format,omitempty"` // "" (runbox's envelope) or "judge0"
}

// JobRequest is the body of POST /v1/jobs: a run and an optional callback.
type JobRequest struct {
	RunRequest
	Callback *Callback `json:"callback,omitempty"`
	// IdempotencyKey, when set, is sent as the Idempotency-Key header: a
	// repeated submit returns the first submit's job.
	IdempotencyKey string `json:"-"`
}

// JobAccepted is the answer of a submit.
type JobAccepted struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	URL    string `json:"url"`
	// Replayed is true when the Idempotency-Key named an earlier submit.
	Replayed bool `json:"-"`
}

// Signature signs a job's result.
type Signature struct {
	Algorithm string `json:"algorithm"`
	KeyID     string `json:"key_id"`
	Statement string `json:"statement"`
	Value     string `json:"value"` // base64
}

// WebhookAttempt is one delivery attempt of a job's callback.
type WebhookAttempt struct {
	At         time.Time `json:"at"`
	Status     int       `json:"status,omitempty"`
	Error      string    `json:"error,omitempty"`
	DurationMS int64     `json:"duration_ms"`
}

// Webhook is the delivery of a job's callback.
type Webhook struct {
	Attempts  []WebhookAttempt `json:"attempts"`
	Delivered bool             `json:"delivered"`
	GaveUp    bool             `json:"gave_up,omitempty"`
}

// Job describes a job.
type Job struct {
	ID            string     `json:"id"`
	Status        string     `json:"status"` // JobQueued, JobRunning, JobDone, JobCancelled, JobFailed
	CreatedAt     time.Time  `json:"created_at"`
	StartedAt     time.Time  `json:"started_at"`
	FinishedAt    time.Time  `json:"finished_at"`
	Node          string     `json:"node,omitempty"`
	Runs          int        `json:"runs"`
	RequestSHA256 string     `json:"request_sha256"`
	Error         string     `json:"error,omitempty"` // JobFailed: why runbox could not run it
	Signature     *Signature `json:"signature,omitempty"`
	Callback      *struct {
		URL string `json:"url"`
	} `json:"callback,omitempty"`
	Webhook *Webhook `json:"webhook,omitempty"`
	URL     string   `json:"url"`
	// Result is the run's answer when the job is done.
	Result *RunResponse `json:"-"`
	// RawResult is Result as the server sent it (what Signature signs).
	RawResult json.RawMessage `json:"result,omitempty"`
}

// Ended reports whether the job has reached its last status.
func (j *Job) Ended() bool {
	return j.Status == JobDone || j.Status == JobCancelled || j.Status == JobFailed
}

// decodeJob decodes a job and its result.
func decodeJob(b []byte) (*Job, error) {
	var j Job
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("decode job: %w", err)
	}
	if len(j.RawResult) > 0 && string(j.RawResult) != "null" {
		j.Result = &RunResponse{}
		if err := json.Unmarshal(j.RawResult, j.Result); err != nil {
			return nil, fmt.Errorf("decode job %s's result: %w", j.ID, err)
		}
	}
	return &j, nil
}

// SubmitJob queues a run: POST /v1/jobs.
func (c *Client) SubmitJob(ctx context.Context, req JobRequest) (*JobAccepted, error) {
	r := request{method: http.MethodPost, path: "/v1/jobs", json: req}
	if req.IdempotencyKey != "" {
		r.header = http.Header{"Idempotency-Key": {req.IdempotencyKey}}
	}
	var out JobAccepted
	resp, err := c.call(ctx, r, &out)
	if err != nil {
		return nil, err
	}
	out.Replayed = resp.Header.Get("Idempotent-Replayed") == "true"
	return &out, nil
}

// Job describes a job, with its result when done: GET /v1/jobs/{id}.
func (c *Client) Job(ctx context.Context, id string) (*Job, error) {
	return c.PollJob(ctx, id, 0)
}

// PollJob is Job as a long poll: the server answers when the job ends or
// after wait (whole seconds, at most a minute, and at most the server's
// write_timeout less 5 s) with the job as it is.
func (c *Client) PollJob(ctx context.Context, id string, wait time.Duration) (*Job, error) {
	var q url.Values
	if wait > 0 {
		secs := min(int((wait+time.Second-1)/time.Second), maxWaitSeconds)
		q = url.Values{"wait": {strconv.Itoa(secs)}}
	}
	b, err := c.callRaw(ctx, request{method: http.MethodGet, path: pathOf("jobs", id), query: q})
	if err != nil {
		return nil, err
	}
	return decodeJob(b)
}

// maxWaitSeconds is the longest ?wait= the server takes.
const maxWaitSeconds = 60

// WaitJob long-polls a job until it ends (done, cancelled or failed) or
// ctx ends.
func (c *Client) WaitJob(ctx context.Context, id string) (*Job, error) {
	for {
		j, err := c.PollJob(ctx, id, maxWaitSeconds*time.Second)
		if err != nil || j.Ended() {
			return j, err
		}
	}
}

// JobListOptions select a page of jobs.
type JobListOptions struct {
	Status string // only jobs of this status
	Limit  int    // 1 to 100 (default 20)
	Cursor string // NextCursor of the previous page
}

// JobList is a page of jobs, newest first, without their results.
type JobList struct {
	Jobs       []Job  `json:"jobs"`
	NextCursor string `json:"next_cursor,omitempty"` // "" on the last page
}

// Jobs lists jobs: GET /v1/jobs.
func (c *Client) Jobs(ctx context.Context, o JobListOptions) (*JobList, error) {
	q := url.Values{}
	if o.Status != "" {
		q.Set("status", o.Status)
	}
	if o.Limit != 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	var out JobList
	if _, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/jobs", query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CancelJob cancels a queued or running job and returns it; a finished
// job is a 409 *Error.
func (c *Client) CancelJob(ctx context.Context, id string) (*Job, error) {
	b, err := c.callRaw(ctx, request{method: http.MethodDelete, path: pathOf("jobs", id)})
	if err != nil {
		return nil, err
	}
	return decodeJob(b)
}

// JobFile returns one returned file of a done job, by its name in the
// result's files.
func (c *Client) JobFile(ctx context.Context, id, name string) ([]byte, error) {
	elems := strings.Split(name, "/")
	for i, e := range elems {
		elems[i] = url.PathEscape(e)
	}
	return c.callRaw(ctx, request{method: http.MethodGet, path: pathOf("jobs", id, "files") + "/" + strings.Join(elems, "/")})
}

// PublicKey is a node's key that signs job results.
type PublicKey struct {
	KeyID     string `json:"key_id"`
	Node      string `json:"node"`
	Algorithm string `json:"algorithm"`  // "ed25519"
	PublicKey string `json:"public_key"` // base64 of the 32 bytes
}

// Keys lists the public keys that sign job results: GET /v1/keys.
func (c *Client) Keys(ctx context.Context) ([]PublicKey, error) {
	var out struct {
		Keys []PublicKey `json:"keys"`
	}
	if _, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/keys"}, &out); err != nil {
		return nil, err
	}
	return out.Keys, nil
}

// JobEvent is one event of a job: a status change or a chunk of output.
type JobEvent struct {
	Type   string    // "status" or "output"
	Status string    // status: the job's new status
	Node   string    // status: the node that runs it
	At     time.Time // status
	Error  string    // status: why it failed
	Stream string    // output: "stdout" or "stderr"
	Data   []byte    // output: the bytes, exactly
}

// JobEvents follows a job's events (Server-Sent Events, from its first)
// and calls fn for each until the job ends (then it returns nil), ctx
// ends, or fn returns an error (returned as is).
func (c *Client) JobEvents(ctx context.Context, id string, fn func(JobEvent) error) error {
	r := request{method: http.MethodGet, path: pathOf("jobs", id, "events"), header: http.Header{"Accept": {"text/event-stream"}}}
	resp, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventBytes)
	var data bytes.Buffer
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if data.Len() == 0 {
				continue
			}
			ev, err := decodeEvent(data.Bytes())
			data.Reset()
			if err != nil {
				return fmt.Errorf("job %s events: %w", id, err)
			}
			if err := fn(ev); err != nil {
				return err
			}
		case bytes.HasPrefix(line, []byte("data:")):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.Write(bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" ")))
		}
		// event: lines repeat the data's type; comments (keep-alives)
		// and other fields are skipped.
	}
	if err := sc.Err(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("job %s events: %w", id, err)
	}
	return ctx.Err()
}

func decodeEvent(b []byte) (JobEvent, error) {
	var raw struct {
		Type       string    `json:"type"`
		Status     string    `json:"status"`
		Node       string    `json:"node"`
		At         time.Time `json:"at"`
		Error      string    `json:"error"`
		Stream     string    `json:"stream"`
		Data       string    `json:"data"`
		DataBase64 []byte    `json:"data_base64"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return JobEvent{}, fmt.Errorf("decode event: %w", err)
	}
	ev := JobEvent{Type: raw.Type, Status: raw.Status, Node: raw.Node, At: raw.At, Error: raw.Error, Stream: raw.Stream}
	if raw.DataBase64 != nil {
		ev.Data = raw.DataBase64
	} else if raw.Data != "" {
		ev.Data = []byte(raw.Data)
	}
	return ev, nil
}
