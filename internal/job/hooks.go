package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// hookLoop delivers webhooks until Close. A delivery that fails is tried
// again after the next delay of WebhookRetries (the queue message is
// returned with that delay, so the schedule survives restarts and moves
// to another node when this one dies); after the last, it is given up.
func (e *Engine) hookLoop() {
	for e.ctx.Err() == nil {
		msg, err := e.hooks.Next(jetstream.FetchContext(e.ctx))
		if err != nil {
			if e.ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
				e.pause(200 * time.Millisecond)
			}
			continue
		}
		e.deliver(msg)
	}
}

func (e *Engine) deliver(msg jetstream.Msg) {
	ctx := e.ctx
	id := string(msg.Data())
	rec, _, err := e.get(ctx, id)
	if errors.Is(err, ErrNotFound) || err == nil && (rec.Callback == nil || rec.Webhook != nil && (rec.Webhook.Delivered || rec.Webhook.GaveUp)) {
		_ = msg.Ack()
		return
	}
	if err != nil {
		_ = msg.NakWithDelay(time.Second)
		return
	}
	method, body, err := e.webhook(ctx, rec)
	if err != nil {
		e.log.Error("building a webhook", "job", id, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	a := e.sender.Send(ctx, method, rec.Callback.URL, rec.Callback.Headers, id, body)
	if ctx.Err() != nil {
		_ = msg.Nak() // stopping: another node (or this one, restarted) tries again
		return
	}
	tries := 1
	if meta, err := msg.Metadata(); err == nil {
		tries = int(meta.NumDelivered)
	}
	last := !a.OK() && tries > len(e.cfg.WebhookRetries)
	if _, _, err := e.change(context.Background(), id, func(r *Record) bool {
		if r.Webhook == nil {
			r.Webhook = &Webhook{}
		}
		if len(r.Webhook.Attempts) < len(e.cfg.WebhookRetries)+4 {
			r.Webhook.Attempts = append(r.Webhook.Attempts, a)
		}
		r.Webhook.Delivered = r.Webhook.Delivered || a.OK()
		r.Webhook.GaveUp = last
		return true
	}); err != nil {
		e.log.Error("recording a webhook attempt", "job", id, "err", err)
	}
	switch {
	case a.OK():
		_ = msg.Ack()
	case last:
		e.log.Info("webhook given up", "job", id, "attempts", tries, "err", a.Error)
		_ = msg.Term()
	default:
		_ = msg.NakWithDelay(e.cfg.WebhookRetries[tries-1])
	}
}

// webhook is the method and body of a job's callback: its format's, or
// the native envelope.
func (e *Engine) webhook(ctx context.Context, rec Record) (string, []byte, error) {
	if rec.Callback.Format == "" {
		body, err := e.WebhookBody(ctx, rec)
		return http.MethodPost, body, err
	}
	e.mu.Lock()
	f, ok := e.formats[rec.Callback.Format]
	e.mu.Unlock()
	if !ok {
		return "", nil, fmt.Errorf("webhook format %q is not registered on node %s", rec.Callback.Format, e.cfg.Node)
	}
	result, err := e.Result(ctx, rec)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return "", nil, err
	}
	rec.Webhook = nil
	body, err := f.Body(View(rec, result))
	return f.Method, body, err
}

// WebhookBody is what a job's callback receives: the Standard Webhooks
// envelope {type, timestamp, data} with the job (as View shows it, without
// the webhook's own attempts) as data. It is the same on every attempt.
func (e *Engine) WebhookBody(ctx context.Context, rec Record) ([]byte, error) {
	result, err := e.Result(ctx, rec)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	rec.Webhook = nil
	return json.Marshal(struct {
		Type      string          `json:"type"`
		Timestamp time.Time       `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}{"job." + rec.Status, rec.FinishedAt, View(rec, result)})
}
