package runner

import (
	"container/list"
	"context"
	"sync"
	"time"

	"github.com/runbox-dev/runbox/internal/env"
	"github.com/runbox-dev/runbox/internal/jail"
)

// Cache keeps compiled workspaces, bounded in bytes and in age. Identical
// compiles asked for at the same time run once; only successful compiles
// are kept, so a failing one is retried next time.
type Cache struct {
	maxBytes int64
	maxAge   time.Duration
	now      func() time.Time

	mu      sync.Mutex
	bytes   int64
	lru     *list.List // of *entry, most recent first
	byKey   map[string]*list.Element
	flights map[string]*flight // compiles running, by key
}

type entry struct {
	key   string
	art   *artifact
	added time.Time
}

// flight is one compile that several identical requests wait for. It runs
// under a context of its own, not under its first caller's: a client that
// goes away must not fail the others' requests. It is cancelled (its box
// killed) when the last caller waiting for it leaves.
type flight struct {
	done    chan struct{} // closed when art and err are set
	art     *artifact
	err     error
	waiters int // guarded by Cache.mu
	cancel  context.CancelFunc
}

// NewCache makes a cache of at most maxBytes, whose entries expire after
// maxAge.
func NewCache(maxBytes int64, maxAge time.Duration) *Cache {
	return &Cache{maxBytes: maxBytes, maxAge: maxAge, now: time.Now, lru: list.New(),
		byKey: map[string]*list.Element{}, flights: map[string]*flight{}}
}

// Get returns the artifact for key, compiling it with do when absent. It
// reports whether the artifact came from the cache or from a compile
// another request had started. When ctx ends first, Get returns ctx's
// error at once; the compile goes on while another caller waits for it.
func (c *Cache) Get(ctx context.Context, key string, do func(context.Context) (*artifact, error)) (*artifact, bool, error) {
	c.mu.Lock()
	if a := c.lookupLocked(key); a != nil {
		c.mu.Unlock()
		return a, true, nil
	}
	f, joined := c.flights[key]
	if !joined {
		// Detached from the first caller's cancellation (its values, such
		// as loggers, are kept); cancelled by the last waiter to leave.
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel}
		c.flights[key] = f
		go c.fly(fctx, key, f, do)
	}
	f.waiters++
	c.mu.Unlock()
	select {
	case <-f.done:
		c.mu.Lock()
		f.waiters--
		c.mu.Unlock()
		return f.art, joined, f.err
	case <-ctx.Done():
		c.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			f.cancel()
			// A request arriving now starts afresh rather than join a
			// compile that is being killed.
			if c.flights[key] == f {
				delete(c.flights, key)
			}
		}
		c.mu.Unlock()
		return nil, false, ctx.Err()
	}
}

func (c *Cache) fly(ctx context.Context, key string, f *flight, do func(context.Context) (*artifact, error)) {
	defer f.cancel()
	a, err := do(ctx)
	c.mu.Lock()
	if err == nil && a.result.Status == jail.StatusOK {
		c.storeLocked(key, a)
	}
	if c.flights[key] == f {
		delete(c.flights, key)
	}
	f.art, f.err = a, err
	c.mu.Unlock()
	close(f.done)
}

// Waiting is the number of requests waiting for a compile in flight.
func (c *Cache) Waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, f := range c.flights {
		n += f.waiters
	}
	return n
}

func (c *Cache) lookupLocked(key string) *artifact {
	el, ok := c.byKey[key]
	if !ok {
		return nil
	}
	e := el.Value.(*entry)
	if c.now().Sub(e.added) > c.maxAge {
		c.remove(el)
		return nil
	}
	c.lru.MoveToFront(el)
	return e.art
}

func (c *Cache) storeLocked(key string, a *artifact) {
	if a.size > c.maxBytes {
		return
	}
	if el, ok := c.byKey[key]; ok {
		c.remove(el)
	}
	c.byKey[key] = c.lru.PushFront(&entry{key: key, art: a, added: c.now()})
	c.bytes += a.size
	for c.bytes > c.maxBytes {
		c.remove(c.lru.Back())
	}
}

func (c *Cache) remove(el *list.Element) {
	e := el.Value.(*entry)
	c.lru.Remove(el)
	delete(c.byKey, e.key)
	c.bytes -= e.art.size
}

// Len and Bytes describe the cache, for metrics.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// Bytes is the size of what the cache holds.
func (c *Cache) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

func durationOf(d env.Duration) time.Duration { return time.Duration(d) }
