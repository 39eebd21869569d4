// Package jsapi bounds the JetStream API calls a node makes while it
// starts. Their context has a long deadline (the node's whole start-up),
// and a JetStream answer can be lost while a cluster elects its leaders or
// re-forms its routes: one lost answer would hold the start until that
// deadline, where asking again gets an answer at once.
package jsapi

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Each bounds one attempt of a call.
const Each = 10 * time.Second

// pause separates an attempt that failed at once (no responders: the
// cluster has no JetStream leader yet) from the next.
const pause = 250 * time.Millisecond

// Retry calls f with a context bounded by Each, and again after an attempt
// that timed out or found no responder, until f succeeds, fails otherwise,
// or ctx ends. f must be idempotent (a create-or-update).
func Retry(ctx context.Context, f func(ctx context.Context) error) error {
	return retry(ctx, Each, f)
}

func retry(ctx context.Context, each time.Duration, f func(ctx context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, each)
		err := f(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !transient(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
	}
}

// transient reports whether err means that no answer came, as opposed to
// an answer that refused the call.
func transient(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}
