package image

import (
	"context"
	"sync"
)

// flights runs one call per key at a time and shares its result with every
// caller that asks for the same key meanwhile (like x/sync/singleflight), with
// two differences a pull needs:
//
//   - The call runs under a context of its own, cancelled only when the last
//     caller waiting for it gives up: one impatient caller does not fail the
//     pull for the others.
//   - That last caller returns only once the call has ended, so a cancelled
//     Pull has removed its temporary directory by the time it returns.
//
// Every waiter's Progress receives the call's progress.
type flights struct {
	mu    sync.Mutex
	calls map[string]*call
}

// call is one running call of flights.do.
type call struct {
	done chan struct{} // closed when fn has returned; img and err are set before
	img  *Image
	err  error

	// Guarded by flights.mu.
	waiters  int
	cancel   context.CancelFunc
	progress map[int]Progress
	nextID   int
}

// do returns the result of fn, run once for key however many callers ask
// for it concurrently. fn reports progress to the Progress it is given.
func (g *flights) do(ctx context.Context, key string, p Progress, fn func(context.Context, Progress) (*Image, error)) (*Image, error) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = make(map[string]*call)
	}
	c := g.calls[key]
	if c == nil {
		// Detached from the first caller's cancellation (not from its
		// values): the call serves every waiter and is cancelled by
		// the last one to leave.
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c = &call{done: make(chan struct{}), cancel: cancel, progress: make(map[int]Progress)}
		g.calls[key] = c
		go func() {
			defer cancel()
			img, err := fn(cctx, func(done, total int64) { g.report(c, done, total) })
			g.mu.Lock()
			if g.calls[key] == c {
				delete(g.calls, key)
			}
			g.mu.Unlock()
			c.img, c.err = img, err
			close(c.done)
		}()
	}
	c.waiters++
	id := c.nextID
	c.nextID++
	if p != nil {
		c.progress[id] = p
	}
	g.mu.Unlock()

	select {
	case <-c.done:
		return c.img, c.err
	case <-ctx.Done():
	}
	g.mu.Lock()
	delete(c.progress, id)
	c.waiters--
	last := c.waiters == 0
	if last {
		c.cancel()
		// A caller arriving from now on starts afresh rather than
		// joining a call that is being torn down.
		if g.calls[key] == c {
			delete(g.calls, key)
		}
	}
	g.mu.Unlock()
	if last {
		<-c.done
	}
	return nil, ctx.Err()
}

// report passes progress to the waiters of c.
func (g *flights) report(c *call, done, total int64) {
	g.mu.Lock()
	ps := make([]Progress, 0, len(c.progress))
	for _, p := range c.progress {
		ps = append(ps, p)
	}
	g.mu.Unlock()
	for _, p := range ps {
		p(done, total)
	}
}
