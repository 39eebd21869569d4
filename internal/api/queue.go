package api

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

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

// take waits for a slot for as long as ctx lets it, outside the wait list
// and its timeout: a job waits in its own queue, and takes a box here when
// one is free.
func (q *queue) take(ctx context.Context, m *Metrics) (release func(), err error) {
	select {
	case q.slots <- struct{}{}:
		m.boxes.Inc()
		return func() {
			<-q.slots
			m.boxes.Dec()
		}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
