package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/runbox-dev/runbox/internal/job/sign"
)

// workLoop takes jobs from the queue, one at a time, until Close.
func (e *Engine) workLoop() {
	for e.ctx.Err() == nil {
		msg, err := e.queue.Next(jetstream.FetchContext(e.ctx))
		if err != nil {
			if e.ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
				e.log.Debug("fetching a job", "err", err)
				e.pause(200 * time.Millisecond)
			}
			continue
		}
		e.take(msg)
	}
}

// missingDeliveries is how many times a queue message whose job record
// cannot be read is delivered before it is dropped.
const missingDeliveries = 5

// pause waits d, or until Close.
func (e *Engine) pause(d time.Duration) {
	select {
	case <-e.ctx.Done():
	case <-time.After(d):
	}
}

// take claims the job a queue message names, runs it and records its end.
func (e *Engine) take(msg jetstream.Msg) {
	e.active.Add(1)
	defer e.active.Add(-1)
	id := string(msg.Data())
	ctx := e.ctx
	var tooMany bool
	rec, rev, claimed, err := e.changeFrom(ctx, id, nil, 0, func(r *Record) bool {
		if Terminal(r.Status) {
			return false
		}
		if r.Runs >= e.cfg.MaxRuns {
			// Every node that took it died or stopped while running it.
			tooMany = true
			r.Status, r.FinishedAt, r.Node = Failed, time.Now().UTC(), e.cfg.Node
			r.Error = fmt.Sprintf("the job was taken %d times and never finished (its nodes stopped while running it)", r.Runs)
			return true
		}
		r.Status, r.Node, r.StartedAt, r.Error = Running, e.cfg.Node, time.Now().UTC(), ""
		r.Runs++
		return true
	})
	switch {
	case errors.Is(err, ErrNotFound):
		// A record read from a replica that has not yet applied the
		// job's creation (KV reads are direct gets, which any replica
		// answers: a follower that lags, or one just elected) looks
		// the same as one that expired or was never stored. Acking at
		// once would lose a queued job; it is dropped only once it has
		// been missing for several deliveries.
		if meta, merr := msg.Metadata(); merr == nil && meta.NumDelivered < missingDeliveries {
			e.log.Debug("a queued job's record is not there yet", "job", id, "delivery", meta.NumDelivered)
			_ = msg.NakWithDelay(time.Second)
			return
		}
		e.log.Warn("dropping a queued job whose record does not exist (expired, or never stored)", "job", id)
		_ = msg.Ack()
		return
	case err != nil:
		e.log.Error("claiming a job", "job", id, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	case !claimed:
		_ = msg.Ack()
		return
	case tooMany:
		_ = msg.Ack()
		e.ended(ctx, rec)
		return
	}
	e.event(id, statusEvent(rec))

	runCtx, stop := context.WithCancel(ctx)
	e.mu.Lock()
	e.running[id] = stop
	e.mu.Unlock()
	beat := time.NewTicker(e.cfg.AckWait / 3)
	done := make(chan struct{})
	silent := e.noBeat
	go func() {
		for {
			select {
			case <-done:
				return
			case <-beat.C:
				if !silent {
					_ = msg.InProgress()
				}
			}
		}
	}()
	result, werr := e.run(runCtx, rec)
	rec.Request = nil
	close(done)
	beat.Stop()
	e.mu.Lock()
	delete(e.running, id)
	e.mu.Unlock()
	stop()

	if e.ctx.Err() != nil {
		// This node is stopping: the job goes back to the queue, to run
		// again here after a restart or on another node.
		bg := context.Background()
		_, _, _ = e.change(bg, id, func(r *Record) bool {
			if r.Status != Running || r.Node != e.cfg.Node || r.Runs != rec.Runs {
				return false
			}
			r.Status, r.Runs = Queued, r.Runs-1
			return true
		})
		_ = msg.Nak()
		return
	}
	if errors.Is(werr, errStorage) {
		// Ours, not the job's: it runs again (job_max_runs bounds how often).
		e.log.Error("running a job", "job", id, "err", werr)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	e.finish(msg, rec, rev, result, werr)
}

// errStorage marks a failure of the jobs' storage (NATS), not of a run.
var errStorage = errors.New("job storage")

// retryTimeout bounds the retries of a call to the jobs' storage: NATS
// refuses requests for seconds while a stream elects a new leader (after
// its last one died).
const retryTimeout = time.Minute

// retry calls f until it succeeds, finds nothing, or retryTimeout has
// passed, telling NATS meanwhile that the job (msg, when set) is still in
// hand, so that no other node takes it.
func (e *Engine) retry(ctx context.Context, msg jetstream.Msg, what, id string, f func() error) error {
	deadline := time.Now().Add(retryTimeout)
	for {
		err := f()
		if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, jetstream.ErrObjectNotFound) ||
			ctx.Err() != nil || e.ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		e.log.Warn(what+"; retrying", "job", id, "err", err)
		if msg != nil {
			_ = msg.InProgress()
		}
		e.pause(time.Second)
	}
}

// run fetches the request and runs it, its output published as events.
func (e *Engine) run(ctx context.Context, rec Record) ([]byte, error) {
	request := []byte(rec.Request)
	if request == nil {
		if err := e.retry(ctx, nil, "reading a job's request", rec.ID, func() (err error) {
			request, err = e.data.GetBytes(ctx, rec.ID+".request")
			return err
		}); err != nil {
			return nil, fmt.Errorf("%w: reading the request: %w", errStorage, err)
		}
	}
	return e.work(context.WithValue(ctx, ownerKey{}, rec.Owner), request, func(stream string, p []byte) {
		for len(p) > 0 {
			n := min(len(p), maxChunk)
			e.event(rec.ID, Event{Type: "output", Stream: stream, Data: string(p[:n])})
			p = p[n:]
		}
	})
}

// maxChunk bounds the output one event carries.
const maxChunk = 32 << 10

// finish records a run's end, if this run still holds the job: a job
// cancelled meanwhile, or taken by another node after this one was silent
// too long, keeps what it has, and this run's result is dropped.
func (e *Engine) finish(msg jetstream.Msg, claimed Record, rev uint64, result []byte, werr error) {
	ctx := context.Background()
	id := claimed.ID
	object := ""
	if werr == nil && !inline(result) {
		object = fmt.Sprintf("%s.result.%d", id, claimed.Runs)
		if err := e.retry(ctx, msg, "storing a job's result", id, func() error {
			_, err := e.data.PutBytes(ctx, object, result)
			return err
		}); err != nil {
			// The job runs again (job_max_runs bounds how often).
			e.log.Error("storing a job's result", "job", id, "err", err)
			_ = msg.NakWithDelay(time.Second)
			return
		}
	}
	claimed.Request = nil
	end := func(r *Record) bool {
		if r.Status != Running || r.Node != e.cfg.Node || r.Runs != claimed.Runs {
			return false
		}
		r.FinishedAt, r.Request = time.Now().UTC(), nil
		if werr != nil {
			r.Status, r.Error = Failed, werr.Error()
			return true
		}
		r.Status, r.Result = Done, object
		if object == "" {
			r.ResultInline = result
		}
		sig, err := e.sign(*r, result)
		if err != nil {
			r.Status, r.Result, r.ResultInline, r.Error = Failed, "", nil, "signing the result: "+err.Error()
			return true
		}
		r.Signature = &sig
		return true
	}
	// The record as this run claimed it is most likely still the latest:
	// try it first; a retry reads it again.
	var rec Record
	var won bool
	from := &claimed
	err := e.retry(ctx, msg, "recording a job's end", id, func() (err error) {
		rec, _, won, err = e.changeFrom(ctx, id, from, rev, end)
		from = nil
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		// The record still says running: acknowledging would leave it so
		// for ever. The job runs again.
		e.log.Error("recording a job's end", "job", id, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	// A try whose answer was lost may have landed: then this run ended it.
	if !won && rec.Status == Done && rec.Node == e.cfg.Node && rec.Runs == claimed.Runs {
		won = true
	}
	if !won || rec.Status != Done {
		if object != "" {
			_ = e.data.Delete(ctx, object)
		}
	}
	_ = msg.Ack()
	if won {
		e.ended(ctx, rec)
	}
}

// sign signs a finished job's statement with this node's key.
func (e *Engine) sign(r Record, result []byte) (sign.Signature, error) {
	sum, files, err := sign.ResultDigest(result)
	if err != nil {
		return sign.Signature{}, err
	}
	return sign.Sign(e.key, sign.Statement{JobID: r.ID, Node: e.cfg.Node, KeyID: e.keyID, Status: r.Status,
		RequestSHA256: r.RequestSHA256, ResultSHA256: sum, Files: files,
		CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt})
}

// Event is one item of a job's progress.
type Event struct {
	Type   string    `json:"type"` // "status" or "output"
	Status string    `json:"status,omitempty"`
	Node   string    `json:"node,omitempty"`
	At     time.Time `json:"at,omitzero"`
	Error  string    `json:"error,omitempty"`
	Stream string    `json:"stream,omitempty"` // "stdout" or "stderr"
	Data   string    `json:"data,omitempty"`
	// DataBase64 holds an output chunk that is not valid UTF-8.
	DataBase64 []byte `json:"data_base64,omitempty"`
}

func statusEvent(r Record) Event {
	at := r.CreatedAt
	switch {
	case Terminal(r.Status):
		at = r.FinishedAt
	case r.Status == Running:
		at = r.StartedAt
	}
	return Event{Type: "status", Status: r.Status, Node: r.Node, At: at, Error: r.Error}
}

// event publishes an event of job id (kept in the events stream for an
// hour, so a late reader replays it from the start).
func (e *Engine) event(id string, ev Event) {
	if ev.Data != "" && !utf8.ValidString(ev.Data) {
		ev.DataBase64, ev.Data = []byte(ev.Data), ""
	}
	b, _ := json.Marshal(ev)
	if err := e.nc.Publish(eventsPrefix+id, b); err != nil {
		e.log.Debug("publishing an event", "job", id, "err", err)
	}
}

// Events calls f with each event of a job, from its first, until its end
// (or ctx's). A job that has ended gets one event: its end. idle is
// called when nothing happened for a while (to keep a connection alive).
func (e *Engine) Events(ctx context.Context, id, owner string, f func(Event) error, idle func() error) error {
	rec, err := e.Get(ctx, id, owner)
	if err != nil {
		return err
	}
	if Terminal(rec.Status) {
		return f(statusEvent(rec))
	}
	cons, err := e.js.OrderedConsumer(ctx, eventsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{eventsPrefix + id},
		InactiveThreshold: time.Minute})
	if err != nil {
		return err
	}
	// The consumer goes with the reader (the threshold is a backstop).
	defer func() {
		if info := cons.CachedInfo(); info != nil {
			_ = e.js.DeleteConsumer(context.WithoutCancel(ctx), eventsStream, info.Name)
		}
	}()
	for {
		fctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		msg, err := cons.Next(jetstream.FetchContext(fctx))
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			// Nothing for a while: is the job still on its way?
			if err := idle(); err != nil {
				return err
			}
			if rec, err := e.Get(ctx, id, owner); err == nil && Terminal(rec.Status) {
				return f(statusEvent(rec))
			}
			continue
		}
		var ev Event
		if json.Unmarshal(msg.Data(), &ev) != nil {
			continue
		}
		if err := f(ev); err != nil {
			return err
		}
		if ev.Type == "status" && Terminal(ev.Status) {
			return nil
		}
	}
}

// Wait returns a job once it has ended, or as it is when d has passed.
func (e *Engine) Wait(ctx context.Context, id, owner string, d time.Duration) (Record, error) {
	ends := make(chan *nats.Msg, 16)
	sub, err := e.nc.ChanSubscribe(eventsPrefix+id, ends)
	if err != nil {
		return Record{}, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		// Subscribed first, read second: an end between the two is not missed.
		rec, err := e.Get(ctx, id, owner)
		if err != nil || Terminal(rec.Status) {
			return rec, err
		}
		for ended := false; !ended; {
			select {
			case <-ctx.Done():
				return rec, ctx.Err()
			case <-timer.C:
				return e.Get(ctx, id, owner)
			case m := <-ends:
				var ev Event
				ended = json.Unmarshal(m.Data, &ev) == nil && ev.Type == "status" && Terminal(ev.Status)
			}
		}
	}
}

type ownerKey struct{}

// Owner is, in a Work function's context, who submitted the job.
func Owner(ctx context.Context) string {
	o, _ := ctx.Value(ownerKey{}).(string)
	return o
}
