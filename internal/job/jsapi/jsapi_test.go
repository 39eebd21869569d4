package jsapi

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// An attempt whose answer never comes ends at its own bound, and the call
// is made again, while the caller's deadline is far away.
func TestRetryAfterLostAnswer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	calls := 0
	err := retry(ctx, 50*time.Millisecond, func(actx context.Context) error {
		calls++
		if calls < 3 {
			<-actx.Done() // the answer is lost
			return fmt.Errorf("create stream: %w", actx.Err())
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("err %v after %d calls, want success on the 3rd", err, calls)
	}
}

// No responders (JetStream without a leader yet) is asked again too.
func TestRetryNoResponders(t *testing.T) {
	calls := 0
	err := retry(context.Background(), time.Second, func(context.Context) error {
		calls++
		if calls == 1 {
			return nats.ErrNoResponders
		}
		return nil
	})
	if err != nil || calls != 2 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
}

// A refusal is an answer: it is returned at once.
func TestRetryRefusal(t *testing.T) {
	refused := errors.New("stream name already in use with a different configuration")
	calls := 0
	err := retry(context.Background(), time.Second, func(context.Context) error {
		calls++
		return refused
	})
	if !errors.Is(err, refused) || calls != 1 {
		t.Fatalf("err %v after %d calls, want the refusal after 1", err, calls)
	}
}

// The caller's deadline ends the retries.
func TestRetryCallerDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := retry(ctx, 30*time.Millisecond, func(actx context.Context) error {
		<-actx.Done()
		return actx.Err()
	})
	if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() == nil {
		t.Fatalf("err %v, ctx %v: want the caller's deadline", err, ctx.Err())
	}
}
