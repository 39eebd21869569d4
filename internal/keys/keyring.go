package keys

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// pollEvery is how often a keyring on a file looks for changes.
const pollEvery = time.Second

// Keyring is the keys a server checks requests against, kept current
// with the store, and each key's quota state.
type Keyring struct {
	store Store
	log   *slog.Logger

	mu     sync.Mutex
	byHash map[string]*Caller // by Key.Hash
	count  atomic.Int64
}

// NewKeyring loads the store's keys.
func NewKeyring(store Store, log *slog.Logger) (*Keyring, error) {
	k := &Keyring{store: store, log: log, byHash: map[string]*Caller{}}
	return k, k.Reload()
}

// Reload reads the store again. A key that stays keeps its quota state
// (its bucket, its boxes in use); a revoked key is gone from the next
// request on.
func (k *Keyring) Reload() error {
	ks, err := k.store.List()
	if err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	next := make(map[string]*Caller, len(ks))
	for _, key := range ks {
		if CheckName(key.Name) != nil || len(key.Hash) != 64 {
			continue // not a key's record: never a way in
		}
		if c, ok := k.byHash[key.Hash]; ok && c.key.Name == key.Name {
			next[key.Hash] = c
			continue
		}
		next[key.Hash] = newCaller(key)
	}
	k.byHash = next
	k.count.Store(int64(len(next)))
	return nil
}

// Len is how many keys there are.
func (k *Keyring) Len() int { return int(k.count.Load()) }

// Empty reports whether there are no keys (then requests need none).
func (k *Keyring) Empty() bool { return k.count.Load() == 0 }

// Authenticate finds the key whose secret is secret.
func (k *Keyring) Authenticate(secret string) (*Caller, bool) {
	h := Hash(secret)
	k.mu.Lock()
	c := k.byHash[h]
	k.mu.Unlock()
	// The map lookup is by the hash of what was sent, which tells an
	// attacker nothing of a stored secret; the compare is constant-time
	// all the same.
	if c == nil || subtle.ConstantTimeCompare([]byte(c.key.Hash), []byte(h)) != 1 {
		return nil, false
	}
	return c, true
}

// ByName finds a key by its name (a job's owner).
func (k *Keyring) ByName(name string) (*Caller, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, c := range k.byHash {
		if c.key.Name == name {
			return c, true
		}
	}
	return nil, false
}

// Follow keeps the keyring current until ctx ends: over a KV store by its
// watch, over a file by looking at it every second.
func (k *Keyring) Follow(ctx context.Context) error {
	reload := func() {
		if err := k.Reload(); err != nil {
			k.log.Warn("reload keys", "err", err)
		}
	}
	switch s := k.store.(type) {
	case *KVStore:
		return s.Watch(ctx, reload)
	case *FileStore:
		go func() {
			last := stamp(s.Path)
			t := time.NewTicker(pollEvery)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if now := stamp(s.Path); now != last {
						last = now
						reload()
					}
				}
			}
		}()
	}
	return nil
}

// stamp is what changes when the keys file is replaced.
func stamp(path string) [3]int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return [3]int64{}
	}
	ino := int64(0)
	if st, ok := fi.Sys().(interface{ Ino() uint64 }); ok {
		ino = int64(st.Ino())
	}
	return [3]int64{fi.ModTime().UnixNano(), fi.Size(), ino}
}

// Caller is one key and its quota state.
type Caller struct {
	key  Key
	rate *rate.Limiter // nil: no request rate bound

	mu       sync.Mutex
	boxes    int
	cpu      float64 // seconds left in the CPU bucket (may go below 0)
	cpuStamp time.Time
}

func newCaller(k Key) *Caller {
	c := &Caller{key: k, cpu: k.Quota.CPUSecondsPerMinute, cpuStamp: time.Now()}
	if q := k.Quota; q.RequestsPerSecond > 0 {
		c.rate = rate.NewLimiter(rate.Limit(q.RequestsPerSecond), max(q.Burst, int(math.Ceil(q.RequestsPerSecond))))
	}
	return c
}

// Name is the key's name: the owner of its sessions and jobs.
func (c *Caller) Name() string { return c.key.Name }

// Quota is the key's quota.
func (c *Caller) Quota() Quota { return c.key.Quota }

// RateState is a request-rate decision with what the RateLimit-* headers
// report.
type RateState struct {
	OK         bool
	Limit      int           // the burst: requests allowed at once
	Remaining  int           // after this request
	Reset      time.Duration // until the bucket is full again
	RetryAfter time.Duration // when !OK: until one request is allowed
}

// AllowRequest takes one request from the key's rate bucket. A key
// without a rate bound always passes (Limit 0).
func (c *Caller) AllowRequest(now time.Time) RateState {
	if c.rate == nil {
		return RateState{OK: true}
	}
	burst := c.rate.Burst()
	r := c.rate.ReserveN(now, 1)
	st := RateState{Limit: burst}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		st.RetryAfter = d
		st.Reset = time.Duration(float64(burst) / float64(c.rate.Limit()) * float64(time.Second))
		return st
	}
	st.OK = true
	left := c.rate.TokensAt(now)
	st.Remaining = max(int(left), 0)
	st.Reset = time.Duration((float64(burst) - left) / float64(c.rate.Limit()) * float64(time.Second))
	return st
}

// TakeBox counts one more program of the key running; false when its
// boxes bound is reached. Each true is followed by one ReleaseBox.
func (c *Caller) TakeBox() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.key.Quota.Boxes; n > 0 && c.boxes >= n {
		return false
	}
	c.boxes++
	return true
}

// ReleaseBox undoes one TakeBox.
func (c *Caller) ReleaseBox() {
	c.mu.Lock()
	c.boxes--
	c.mu.Unlock()
}

// CPUAvailable reports whether the key may start a program now, and if
// not, how long until its CPU bucket is above zero again.
func (c *Caller) CPUAvailable(now time.Time) (bool, time.Duration) {
	per := c.key.Quota.CPUSecondsPerMinute
	if per <= 0 {
		return true, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refill(now)
	if c.cpu > 0 {
		return true, 0
	}
	return false, time.Duration((-c.cpu + 0.001) / (per / 60) * float64(time.Second))
}

// ChargeCPU takes d of CPU time from the key's bucket (after a program
// ran: what it used, which may take the bucket below zero).
func (c *Caller) ChargeCPU(now time.Time, d time.Duration) {
	if c.key.Quota.CPUSecondsPerMinute <= 0 || d <= 0 {
		return
	}
	c.mu.Lock()
	c.refill(now)
	c.cpu -= d.Seconds()
	c.mu.Unlock()
}

func (c *Caller) refill(now time.Time) {
	per := c.key.Quota.CPUSecondsPerMinute
	if el := now.Sub(c.cpuStamp); el > 0 {
		c.cpu = math.Min(per, c.cpu+el.Seconds()*per/60)
		c.cpuStamp = now
	}
}
