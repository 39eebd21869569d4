package runner

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/boxtest"
	"github.com/runbox-dev/runbox/internal/jail"
)

// A compile that several requests wait for runs until the last of them
// leaves, whatever the first one does.
func TestCompileFlightOutlivesItsFirstCaller(t *testing.T) {
	c := NewCache(1<<20, time.Hour)
	started, finish := make(chan context.Context, 1), make(chan struct{})
	do := func(ctx context.Context) (*artifact, error) {
		started <- ctx
		select {
		case <-finish:
			return &artifact{result: jail.Result{Status: jail.StatusOK}}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	ctx1, cancel1 := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, _, err := c.Get(ctx1, "k", do)
		first <- err
	}()
	flightCtx := <-started
	type got struct {
		shared bool
		err    error
	}
	second := make(chan got, 1)
	go func() {
		_, shared, err := c.Get(context.Background(), "k", do)
		second <- got{shared, err}
	}()
	waitFor(t, func() bool { return c.Waiting() == 2 })
	cancel1()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller: %v", err)
	}
	if flightCtx.Err() != nil {
		t.Fatal("the compile was cancelled with its first caller")
	}
	close(finish)
	if g := <-second; g.err != nil || !g.shared {
		t.Fatalf("second caller: %+v", g)
	}
	if _, cached, err := c.Get(context.Background(), "k", do); err != nil || !cached {
		t.Fatalf("not kept: %v %v", cached, err)
	}
}

// When every caller has left, the compile is cancelled (its box killed),
// and the next request starts a fresh one.
func TestCompileFlightEndsWithItsLastCaller(t *testing.T) {
	c := NewCache(1<<20, time.Hour)
	started := make(chan context.Context, 2)
	do := func(ctx context.Context) (*artifact, error) {
		started <- ctx
		<-ctx.Done()
		return nil, ctx.Err()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Get(ctx, "k", do)
	}()
	flightCtx := <-started
	cancel()
	<-done
	waitFor(t, func() bool { return flightCtx.Err() != nil })
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go c.Get(ctx2, "k", do)
	if next := <-started; next == flightCtx || next.Err() != nil {
		t.Fatal("a new request joined the cancelled compile")
	}
}

func waitFor(t *testing.T, cond func() bool) { boxtest.WaitUntil(t, 10*time.Second, cond) }
