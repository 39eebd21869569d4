package keys

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFileStore(t *testing.T) {
	dir := t.TempDir()
	s := NewFileStore(dir)
	if ks, err := s.List(); err != nil || len(ks) != 0 {
		t.Fatalf("empty store: %v %v", ks, err)
	}
	a, secret, err := New("alice", Quota{RequestsPerSecond: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, Prefix) || len(secret) != len(Prefix)+43 || a.Hash != Hash(secret) {
		t.Fatalf("secret %q hash %s", secret, a.Hash)
	}
	if err := s.Add(a); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(a); !errors.Is(err, ErrExists) {
		t.Fatalf("second add: %v", err)
	}
	b, _, _ := New("bob", Quota{})
	if err := s.Add(b); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(s.Path)
	if strings.Contains(string(raw), secret) {
		t.Fatal("the keys file holds the secret")
	}
	if fi, _ := os.Stat(s.Path); fi.Mode().Perm() != 0o600 {
		t.Errorf("keys file mode %v", fi.Mode())
	}
	if err := s.Remove("alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
	ks, _ := s.List()
	if len(ks) != 1 || ks[0].Name != "bob" {
		t.Fatalf("left %+v", ks)
	}
}

// Two writers at once (a CLI and another CLI) lose nothing.
func TestFileStoreConcurrentAdds(t *testing.T) {
	s := NewFileStore(t.TempDir())
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, _, _ := New("k"+string(rune('a'+i)), Quota{})
			if err := s.Add(k); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ks, _ := s.List(); len(ks) != 20 {
		t.Fatalf("%d keys after 20 adds", len(ks))
	}
}

func TestNamesAndQuotas(t *testing.T) {
	for _, bad := range []string{"", "a b", "../x", "ü", strings.Repeat("a", 65)} {
		if _, _, err := New(bad, Quota{}); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
	for _, q := range []Quota{{RequestsPerSecond: -1}, {Burst: 3}, {Maxima: Maxima{Memory: -1}}} {
		if _, _, err := New("x", q); err == nil {
			t.Errorf("quota %+v accepted", q)
		}
	}
}

func TestKeyringFollowsTheFile(t *testing.T) {
	s := NewFileStore(t.TempDir())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	k, err := NewKeyring(s, log)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Empty() {
		t.Fatal("a keyring without keys is not empty")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := k.Follow(ctx); err != nil {
		t.Fatal(err)
	}
	key, secret, _ := New("carol", Quota{})
	if err := s.Add(key); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { _, ok := k.Authenticate(secret); return ok })
	if _, ok := k.Authenticate(secret + "x"); ok {
		t.Fatal("a wrong secret is accepted")
	}
	if _, ok := k.Authenticate(key.Hash); ok {
		t.Fatal("the stored hash is accepted as a secret")
	}
	if err := s.Remove("carol"); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { _, ok := k.Authenticate(secret); return !ok })
	if !k.Empty() {
		t.Fatal("not empty after the last key went")
	}
}

func eventually(t *testing.T, f func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if f() {
			return
		}
	}
	t.Fatal("condition not met in 10s")
}

func TestRateBucket(t *testing.T) {
	c := newCaller(Key{Name: "r", Quota: Quota{RequestsPerSecond: 2, Burst: 3}})
	now := time.Unix(1000, 0)
	for i := range 3 {
		st := c.AllowRequest(now)
		if !st.OK || st.Limit != 3 || st.Remaining != 2-i {
			t.Fatalf("request %d: %+v", i, st)
		}
	}
	st := c.AllowRequest(now)
	if st.OK || st.RetryAfter != 500*time.Millisecond {
		t.Fatalf("fourth request: %+v", st)
	}
	if st := c.AllowRequest(now.Add(500 * time.Millisecond)); !st.OK {
		t.Fatalf("after the refill: %+v", st)
	}
	if st := newCaller(Key{}).AllowRequest(now); !st.OK || st.Limit != 0 {
		t.Fatalf("no bound: %+v", st)
	}
}

func TestCPUBucketAndBoxes(t *testing.T) {
	c := newCaller(Key{Name: "c", Quota: Quota{CPUSecondsPerMinute: 6, Boxes: 2}})
	now := c.cpuStamp
	if ok, _ := c.CPUAvailable(now); !ok {
		t.Fatal("a fresh bucket is empty")
	}
	c.ChargeCPU(now, 9*time.Second) // 6 - 9 = -3 s; refills 0.1 s/s
	ok, wait := c.CPUAvailable(now)
	if ok || wait < 30*time.Second || wait > 31*time.Second {
		t.Fatalf("after overspending: %v %v", ok, wait)
	}
	if ok, _ := c.CPUAvailable(now.Add(31 * time.Second)); !ok {
		t.Fatal("not refilled after 31 s")
	}
	first, second, third := c.TakeBox(), c.TakeBox(), c.TakeBox()
	if !first || !second || third {
		t.Fatalf("boxes bound 2: takes %v %v %v", first, second, third)
	}
	c.ReleaseBox()
	if !c.TakeBox() {
		t.Fatal("a released box is not free")
	}
}
