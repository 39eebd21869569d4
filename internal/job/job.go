// Package job runs work asynchronously on NATS JetStream: a job is
// submitted, queued in a work-queue stream, taken by a worker on any node
// up to that node's capacity, run, signed and kept for a retention period;
// its events stream while it runs and a signed webhook reports its end.
//
// Everything a job is lives in JetStream, never in a node's memory: the
// record in a key-value bucket (changed only by compare-and-set, so a job
// completes once even when two nodes ran it), the request and the result in
// an object store, the queue and the webhook deliveries in work-queue
// streams (a node that dies mid-job stops acknowledging, and the job is
// delivered again after the ack deadline). One node embeds a NATS server;
// many share an external NATS cluster.
//
// The package knows nothing of HTTP or of what a request means: the caller
// gives it a Work function that turns a request's bytes into a result's.
package job

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/runbox-dev/runbox/internal/job/jsapi"
	"github.com/runbox-dev/runbox/internal/job/sign"
	"github.com/runbox-dev/runbox/internal/job/webhook"
)

// A job's status.
const (
	Queued    = "queued"
	Running   = "running"
	Done      = "done"
	Cancelled = "cancelled"
	Failed    = "failed" // runbox could not run it; never because the program failed
)

// Terminal reports whether status is an end.
func Terminal(status string) bool { return status == Done || status == Cancelled || status == Failed }

// Errors of the engine that callers map to answers.
var (
	ErrNotFound            = errors.New("no such job")
	ErrQueueFull           = errors.New("the job queue is full")
	ErrFinished            = errors.New("the job has already finished")
	ErrIdempotencyMismatch = errors.New("the Idempotency-Key was used for a different request")
)

// Callback is where a job's end is reported.
type Callback struct {
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	// Format names a registered webhook format (AddFormat) that gives the
	// method and body instead of the native envelope (a compatibility
	// adapter's peer's own).
	Format string `json:"format,omitempty"`
}

// Format is a peer's webhook: its method and its body, built from the
// job as View shows it (without the webhook's attempts).
type Format struct {
	Method string
	Body   func(job []byte) ([]byte, error)
}

// Webhook is the delivery state of a job's callback.
type Webhook struct {
	Attempts  []webhook.Attempt `json:"attempts"`
	Delivered bool              `json:"delivered"`
	GaveUp    bool              `json:"gave_up,omitempty"`
}

// Record is a job as the key-value bucket holds it.
type Record struct {
	ID            string    `json:"id"`
	Status        string    `json:"status"`
	CreatedAt     time.Time `json:"created_at"`
	StartedAt     time.Time `json:"started_at,omitzero"`
	FinishedAt    time.Time `json:"finished_at,omitzero"`
	Node          string    `json:"node,omitempty"`
	Runs          int       `json:"runs"` // times a worker took it
	RequestSHA256 string    `json:"request_sha256"`
	Error         string    `json:"error,omitempty"`
	Result        string    `json:"result_object,omitempty"`
	// A small request and result are kept in the record itself (one
	// round trip fewer each, and no object-store consumer to read them).
	Request      json.RawMessage `json:"request,omitempty"`
	ResultInline json.RawMessage `json:"result_inline,omitempty"`
	Signature    *sign.Signature `json:"signature,omitempty"`
	Callback     *Callback       `json:"callback,omitempty"`
	Webhook      *Webhook        `json:"webhook,omitempty"`
	Owner        string          `json:"owner,omitempty"`
}

// Work runs a request and returns its result. out receives the output as
// it comes ("stdout" or "stderr"). An error means runbox could not run it;
// when ctx was cancelled the job was cancelled (or its node is stopping).
type Work func(ctx context.Context, request []byte, out func(stream string, p []byte)) (result []byte, err error)

// Config sets an engine's bounds.
type Config struct {
	Node           string        // this node's name, unique in the cluster
	Retention      time.Duration // how long jobs and results are kept
	Workers        int           // jobs this node runs at once
	MaxQueued      int           // jobs that may wait in the queue (all nodes)
	AckWait        time.Duration // a node silent this long has lost its job to another
	MaxRuns        int           // times a job may be taken before it is failed
	Replicas       int           // JetStream replicas of every stream
	StoreBytes     int64         // bound of the object store (requests and results)
	WebhookRetries []time.Duration
	WebhookTimeout time.Duration
	WebhookWorkers int
}

// DefaultRetries are the webhook retries' delays: the first two within a
// minute, the last about a day after the first attempt.
var DefaultRetries = []time.Duration{5 * time.Second, 30 * time.Second, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// DefaultConfig is one node's default bounds (Node and Workers are the
// caller's).
var DefaultConfig = Config{Retention: 24 * time.Hour, MaxQueued: 10000, AckWait: 30 * time.Second, MaxRuns: 3,
	Replicas: 1, StoreBytes: 4 << 30, WebhookRetries: DefaultRetries, WebhookTimeout: 10 * time.Second, WebhookWorkers: 2}

// Check reports a configuration the engine cannot work with.
func (c Config) Check() error {
	switch {
	case !nodeRE.MatchString(c.Node):
		return fmt.Errorf("node %q: 1 to 64 letters, digits, '-' or '_'", c.Node)
	case c.Retention < time.Minute:
		return errors.New("job_retention must be at least 1m")
	case c.Workers < 1 || c.MaxQueued < 1 || c.MaxRuns < 1 || c.WebhookWorkers < 1:
		return errors.New("job_workers, job_queue_length, job_max_runs and webhook_workers must be at least 1")
	case c.AckWait < time.Second:
		return errors.New("job_ack_wait must be at least 1s")
	case c.Replicas < 1 || c.Replicas > 5:
		return errors.New("nats_replicas must be 1 to 5")
	case c.StoreBytes < 1<<20:
		return errors.New("job_store must be at least 1MiB")
	case c.WebhookTimeout <= 0:
		return errors.New("webhook_timeout must be positive")
	}
	for _, d := range c.WebhookRetries {
		if d <= 0 {
			return errors.New("webhook_retries: every delay must be positive")
		}
	}
	return nil
}

var (
	nodeRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	idRE   = regexp.MustCompile(`^[0-9a-f]{44}$`)
)

// ValidID reports whether id can name a job (checked before any lookup).
func ValidID(id string) bool { return idRE.MatchString(id) }

// Names in JetStream.
const (
	jobsBucket    = "runbox-jobs"
	idemBucket    = "runbox-idempotency"
	keysBucket    = "runbox-keys"
	dataBucket    = "runbox-job-data"
	queueStream   = "RUNBOX_QUEUE"
	queueSubject  = "runbox.queue"
	eventsStream  = "RUNBOX_EVENTS"
	eventsPrefix  = "runbox.events."
	hooksStream   = "RUNBOX_WEBHOOKS"
	hooksSubject  = "runbox.webhooks"
	cancelPrefix  = "runbox.cancel."
	workersName   = "workers"
	hookConsumer  = "webhooks"
	eventsMaxAge  = time.Hour
	eventsMaxSize = 256 << 20
)

// Engine is one node's part of the job system.
type Engine struct {
	cfg    Config
	nc     *nats.Conn
	js     jetstream.JetStream
	jobs   jetstream.KeyValue
	idem   jetstream.KeyValue
	keys   jetstream.KeyValue
	data   jetstream.ObjectStore
	queue  jetstream.Consumer
	hooks  jetstream.Consumer
	key    ed25519.PrivateKey
	keyID  string
	sender *webhook.Sender
	work   Work
	log    *slog.Logger
	cancel *nats.Subscription

	ctx     context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	running map[string]context.CancelFunc
	formats map[string]Format
	active  atomic.Int64 // jobs being taken, run or finished here

	// noBeat stops the heartbeats of running jobs (tests: a node that has
	// gone silent).
	noBeat bool
}

// busy reports whether this node is handling a job.
func (e *Engine) busy() bool { return e.active.Load() > 0 }

// Open makes (or joins) the streams and buckets, publishes this node's
// public key and starts the workers.
func Open(ctx context.Context, nc *nats.Conn, cfg Config, key ed25519.PrivateKey, sender *webhook.Sender, work Work, log *slog.Logger) (*Engine, error) {
	return openEngine(ctx, nc, cfg, key, sender, work, log, false)
}

func openEngine(ctx context.Context, nc *nats.Conn, cfg Config, key ed25519.PrivateKey, sender *webhook.Sender, work Work, log *slog.Logger, silent bool) (*Engine, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, nc: nc, js: js, key: key, keyID: sign.KeyID(key.Public().(ed25519.PublicKey)),
		sender: sender, work: work, log: log, running: map[string]context.CancelFunc{}, formats: map[string]Format{}, noBeat: silent}
	if err := e.setup(ctx); err != nil {
		return nil, err
	}
	pub, _ := json.Marshal(sign.Public(cfg.Node, key))
	if err := jsapi.Retry(ctx, func(ctx context.Context) error {
		_, err := e.keys.Put(ctx, cfg.Node, pub)
		return err
	}); err != nil {
		return nil, fmt.Errorf("publishing the node's key: %w", err)
	}
	e.cancel, err = nc.Subscribe(cancelPrefix+"*", func(m *nats.Msg) {
		e.mu.Lock()
		stop := e.running[m.Subject[len(cancelPrefix):]]
		e.mu.Unlock()
		if stop != nil {
			stop()
		}
	})
	if err != nil {
		return nil, err
	}
	e.ctx, e.stop = context.WithCancel(context.Background())
	for range cfg.Workers {
		e.wg.Go(e.workLoop)
	}
	for range cfg.WebhookWorkers {
		e.wg.Go(e.hookLoop)
	}
	return e, nil
}

func (e *Engine) setup(ctx context.Context) error {
	c := e.cfg
	// Each call is asked again should its answer be lost (jsapi).
	call := func(what string, f func(ctx context.Context) error) error {
		if err := jsapi.Retry(ctx, f); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	kv := func(what, name string, ttl time.Duration, into *jetstream.KeyValue) error {
		return call(what, func(ctx context.Context) (err error) {
			*into, err = e.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: name, TTL: ttl, History: 1,
				Storage: jetstream.FileStorage, Replicas: c.Replicas})
			return err
		})
	}
	if err := kv("jobs bucket", jobsBucket, c.Retention, &e.jobs); err != nil {
		return err
	}
	if err := kv("idempotency bucket", idemBucket, c.Retention, &e.idem); err != nil {
		return err
	}
	if err := kv("keys bucket", keysBucket, 0, &e.keys); err != nil {
		return err
	}
	if err := call("job data store", func(ctx context.Context) (err error) {
		e.data, err = e.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: dataBucket, TTL: c.Retention,
			MaxBytes: c.StoreBytes, Storage: jetstream.FileStorage, Replicas: c.Replicas})
		return err
	}); err != nil {
		return err
	}
	var qs jetstream.Stream
	if err := call("queue stream", func(ctx context.Context) (err error) {
		qs, err = e.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: queueStream, Subjects: []string{queueSubject},
			Retention: jetstream.WorkQueuePolicy, MaxMsgs: int64(c.MaxQueued), Discard: jetstream.DiscardNew,
			MaxAge: c.Retention, Storage: jetstream.FileStorage, Replicas: c.Replicas, Duplicates: 2 * time.Minute})
		return err
	}); err != nil {
		return err
	}
	if err := call("queue consumer", func(ctx context.Context) (err error) {
		e.queue, err = qs.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: workersName,
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: c.AckWait, MaxAckPending: -1, Replicas: c.Replicas})
		return err
	}); err != nil {
		return err
	}
	if err := call("events stream", func(ctx context.Context) error {
		_, err := e.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: eventsStream, Subjects: []string{eventsPrefix + ">"},
			MaxAge: eventsMaxAge, MaxBytes: eventsMaxSize, Discard: jetstream.DiscardOld, Storage: jetstream.FileStorage,
			Replicas: c.Replicas})
		return err
	}); err != nil {
		return err
	}
	var span time.Duration
	for _, d := range c.WebhookRetries {
		span += d
	}
	var hs jetstream.Stream
	if err := call("webhook stream", func(ctx context.Context) (err error) {
		hs, err = e.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: hooksStream, Subjects: []string{hooksSubject},
			Retention: jetstream.WorkQueuePolicy, MaxAge: span + time.Hour, Storage: jetstream.FileStorage,
			Replicas: c.Replicas, Duplicates: 2 * time.Minute})
		return err
	}); err != nil {
		return err
	}
	return call("webhook consumer", func(ctx context.Context) (err error) {
		e.hooks, err = hs.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: hookConsumer,
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: c.WebhookTimeout + 30*time.Second, MaxAckPending: -1,
			MaxDeliver: len(c.WebhookRetries) + 2, Replicas: c.Replicas})
		return err
	})
}

// Close stops taking jobs; the jobs this node runs are stopped and left to
// be run again (here after a restart, or by another node).
func (e *Engine) Close() {
	e.stop()
	e.mu.Lock()
	for _, stop := range e.running {
		stop()
	}
	e.mu.Unlock()
	_ = e.cancel.Unsubscribe()
	e.wg.Wait()
}

// AddFormat registers a webhook format under name (before jobs use it;
// every node of a cluster registers the same).
func (e *Engine) AddFormat(name string, f Format) {
	e.mu.Lock()
	e.formats[name] = f
	e.mu.Unlock()
}

// HasFormat reports whether a webhook format is registered.
func (e *Engine) HasFormat(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.formats[name]
	return ok
}

// Node is this node's name.
func (e *Engine) Node() string { return e.cfg.Node }

// newID is a job id: 48 bits of milliseconds (so that ids sort by time)
// and 128 random bits.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%012x", time.Now().UnixMilli()) + hex.EncodeToString(b[:])
}

func digest(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// Submit queues a request. With an idempotency key, a repeated submit of
// the same request returns the job of the first (existed true).
func (e *Engine) Submit(ctx context.Context, request []byte, cb *Callback, idemKey, owner string) (rec Record, existed bool, err error) {
	sum := digest(request)
	id := newID()
	if idemKey != "" {
		k := digest([]byte(owner + "\x00" + idemKey))
		if _, err := e.idem.Create(ctx, k, []byte(id)); err != nil {
			if !errors.Is(err, jetstream.ErrKeyExists) {
				return rec, false, err
			}
			return e.replay(ctx, k, sum, owner)
		}
		defer func() {
			if err != nil {
				_ = e.idem.Delete(context.WithoutCancel(ctx), k)
			}
		}()
	}
	rec = Record{ID: id, Status: Queued, CreatedAt: time.Now().UTC(), RequestSHA256: sum, Callback: cb, Owner: owner}
	if cb != nil {
		rec.Webhook = &Webhook{Attempts: []webhook.Attempt{}}
	}
	if inline(request) {
		rec.Request = request
	} else if _, err := e.data.PutBytes(ctx, id+".request", request); err != nil {
		return rec, false, fmt.Errorf("storing the request: %w", err)
	}
	if _, err := e.jobs.Create(ctx, id, encode(rec)); err != nil {
		_ = e.data.Delete(context.WithoutCancel(ctx), id+".request")
		return rec, false, err
	}
	e.event(id, statusEvent(rec))
	if _, err := e.js.Publish(ctx, queueSubject, []byte(id), jetstream.WithMsgID(id)); err != nil {
		bg := context.WithoutCancel(ctx)
		_ = e.jobs.Purge(bg, id)
		_ = e.data.Delete(bg, id+".request")
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == errStreamStoreFailed || e.queued(bg) >= e.cfg.MaxQueued {
			return rec, false, ErrQueueFull
		}
		return rec, false, err
	}
	return rec, false, nil
}

// replay answers a repeated idempotency key with its job.
func (e *Engine) replay(ctx context.Context, k, sum, owner string) (Record, bool, error) {
	// The first submit may be storing its job right now.
	for i := 0; ; i++ {
		ent, err := e.idem.Get(ctx, k)
		if err != nil {
			return Record{}, false, err
		}
		rec, _, err := e.get(ctx, string(ent.Value()))
		switch {
		case err == nil && rec.RequestSHA256 != sum:
			return rec, true, ErrIdempotencyMismatch
		case err == nil:
			return rec, true, nil
		case !errors.Is(err, ErrNotFound) || i == 50:
			return Record{}, false, err
		}
		select {
		case <-ctx.Done():
			return Record{}, false, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// queued is the number of jobs waiting in the queue.
func (e *Engine) queued(ctx context.Context) int {
	info, err := e.queue.Info(ctx)
	if err != nil {
		return 0
	}
	return int(info.NumPending) + info.NumAckPending
}

// errStreamStoreFailed is JetStream's code for a message the stream
// refused to store (here: the queue is at job_queue_length).
const errStreamStoreFailed jetstream.ErrorCode = 10077

// maxInline bounds a request or result kept in the job's record.
const maxInline = 64 << 10

// inline reports whether b is kept in the record: small, and JSON (so that
// the record holds it as it is).
func inline(b []byte) bool { return len(b) <= maxInline && json.Valid(b) }

func encode(r Record) []byte {
	b, _ := json.Marshal(r)
	return b
}

// Get returns a job (ErrNotFound when it never was, has expired, or
// belongs to another owner).
func (e *Engine) Get(ctx context.Context, id, owner string) (Record, error) {
	rec, _, err := e.get(ctx, id)
	if err == nil && rec.Owner != owner {
		return Record{}, ErrNotFound
	}
	return rec, err
}

func (e *Engine) get(ctx context.Context, id string) (Record, uint64, error) {
	if !ValidID(id) {
		return Record{}, 0, ErrNotFound
	}
	ent, err := e.jobs.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Record{}, 0, ErrNotFound
	}
	if err != nil {
		return Record{}, 0, err
	}
	var rec Record
	if err := json.Unmarshal(ent.Value(), &rec); err != nil {
		return Record{}, 0, fmt.Errorf("job %s: %w", id, err)
	}
	return rec, ent.Revision(), nil
}

// change applies f to a job's record by compare-and-set until it holds.
// f returns false to leave the record as it is.
func (e *Engine) change(ctx context.Context, id string, f func(*Record) bool) (Record, bool, error) {
	rec, _, changed, err := e.changeFrom(ctx, id, nil, 0, f)
	return rec, changed, err
}

// changeFrom is change starting from a record read at revision rev (when
// from is set), and returns the record's new revision.
func (e *Engine) changeFrom(ctx context.Context, id string, from *Record, rev uint64, f func(*Record) bool) (Record, uint64, bool, error) {
	for {
		var rec Record
		if from != nil {
			rec, from = *from, nil
		} else {
			var err error
			if rec, rev, err = e.get(ctx, id); err != nil {
				return rec, 0, false, err
			}
		}
		if !f(&rec) {
			return rec, rev, false, nil
		}
		next, err := e.jobs.Update(ctx, id, encode(rec), rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		return rec, next, err == nil, err
	}
}

// Result is a finished job's result, as the Work function returned it.
func (e *Engine) Result(ctx context.Context, rec Record) ([]byte, error) {
	if rec.ResultInline != nil {
		return rec.ResultInline, nil
	}
	if rec.Result == "" {
		return nil, nil
	}
	b, err := e.data.GetBytes(ctx, rec.Result)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, ErrNotFound
	}
	return b, err
}

// Cancel ends a job that has not finished: a queued one never runs, a
// running one's box is killed.
func (e *Engine) Cancel(ctx context.Context, id, owner string) (Record, error) {
	was := ""
	rec, changed, err := e.change(ctx, id, func(r *Record) bool {
		if r.Owner != owner || Terminal(r.Status) {
			return false
		}
		was = r.Status
		r.Status, r.FinishedAt = Cancelled, time.Now().UTC()
		return true
	})
	switch {
	case err == nil && rec.Owner != owner:
		return Record{}, ErrNotFound
	case err != nil:
		return rec, err
	case !changed:
		return rec, ErrFinished
	}
	if was == Running {
		_ = e.nc.Publish(cancelPrefix+id, nil)
	}
	e.ended(ctx, rec)
	return rec, nil
}

// ended announces a job's end: its last event and its webhook.
func (e *Engine) ended(ctx context.Context, rec Record) {
	e.event(rec.ID, statusEvent(rec))
	if rec.Callback != nil {
		if _, err := e.js.Publish(context.WithoutCancel(ctx), hooksSubject, []byte(rec.ID), jetstream.WithMsgID(rec.ID+".webhook")); err != nil {
			e.log.Error("queueing a webhook", "job", rec.ID, "err", err)
		}
	}
}

// List returns a page of jobs, newest first, after cursor (an id), of
// one status when status is set.
func (e *Engine) List(ctx context.Context, status, owner string, limit int, cursor string) (page []Record, next string, err error) {
	lister, err := e.jobs.ListKeys(ctx)
	if err != nil {
		return nil, "", err
	}
	var ids []string
	for k := range lister.Keys() {
		if cursor == "" || k < cursor {
			ids = append(ids, k)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ids)))
	for _, id := range ids {
		rec, _, err := e.get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		if rec.Owner != owner || status != "" && rec.Status != status {
			continue
		}
		if len(page) == limit {
			return page, page[len(page)-1].ID, nil
		}
		page = append(page, rec)
	}
	return page, "", nil
}

// Keys are the public keys of every node that has signed or may sign.
func (e *Engine) Keys(ctx context.Context) ([]sign.PublicKey, error) {
	lister, err := e.keys.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := []sign.PublicKey{}
	for k := range lister.Keys() {
		ent, err := e.keys.Get(ctx, k)
		if err != nil {
			continue
		}
		var p sign.PublicKey
		if json.Unmarshal(ent.Value(), &p) == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}
