package runner

import (
	"container/list"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/runbox-dev/runbox/internal/env"
	"github.com/runbox-dev/runbox/internal/jail"
)

// Cache keeps compiled workspaces, bounded in bytes and in age. Identical
// compiles asked for at the same time run once (singleflight); only
// successful compiles are kept, so a failing one is retried next time.
type Cache struct {
	maxBytes int64
	maxAge   time.Duration
	now      func() time.Time
	group    singleflight.Group

	mu    sync.Mutex
	bytes int64
	lru   *list.List // of *entry, most recent first
	byKey map[string]*list.Element
}

type entry struct {
	key   string
	art   *artifact
	added time.Time
}

// NewCache makes a cache of at most maxBytes, whose entries expire after
// maxAge.
func NewCache(maxBytes int64, maxAge time.Duration) *Cache {
	return &Cache{maxBytes: maxBytes, maxAge: maxAge, now: time.Now, lru: list.New(), byKey: map[string]*list.Element{}}
}

// Get returns the artifact for key, compiling it with do when absent. It
// reports whether the artifact came from the cache (or from a concurrent
// identical compile).
func (c *Cache) Get(key string, do func() (*artifact, error)) (*artifact, bool, error) {
	if a := c.lookup(key); a != nil {
		return a, true, nil
	}
	v, err, shared := c.group.Do(key, func() (any, error) {
		a, err := do()
		if err == nil && a.result.Status == jail.StatusOK {
			c.store(key, a)
		}
		return a, err
	})
	if err != nil {
		return nil, false, err
	}
	return v.(*artifact), shared, nil
}

func (c *Cache) lookup(key string) *artifact {
	c.mu.Lock()
	defer c.mu.Unlock()
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

func (c *Cache) store(key string, a *artifact) {
	if a.size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
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
