package relay

import (
	"context"
	"encoding/hex"
	"fmt"
	"testing"
	"time"
)

func TestOwners(t *testing.T) {
	srv := startNATS(t)
	ctx := context.Background()
	a, _ := startRelay(t, srv, "a", nil, 1500*time.Millisecond, defaultLimits())
	b, _ := startRelay(t, srv, "b", nil, 1500*time.Millisecond, defaultLimits())
	owner := func(r *Relay, id, want string) {
		t.Helper()
		got, err := r.Owner(ctx, id)
		if err != nil || got != want {
			t.Fatalf("Owner(%q) = %q, %v; want %q", id, got, err, want)
		}
	}
	id := hex.EncodeToString(randBytes(4, 16))
	owner(b, id, "")
	owner(b, "not a key*", "")
	if err := a.Claim(ctx, id); err != nil {
		t.Fatal(err)
	}
	owner(b, id, "a")
	owner(a, id, "a")
	b.Release(ctx, id) // not b's: stays
	owner(b, id, "a")
	// The claim outlives its TTL: a renews it.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		owner(b, id, "a")
	}
	a.Release(ctx, id)
	owner(b, id, "")
	if err := a.Claim(ctx, "not a key*"); err == nil {
		t.Fatal("claimed an invalid id")
	}
	// A node that stops renewing loses its claims with the TTL.
	if err := b.Claim(ctx, id); err != nil {
		t.Fatal(err)
	}
	b.Close()
	eventually(t, 5*time.Second, func() error {
		if got, err := a.Owner(ctx, id); got != "" || err != nil {
			return fmt.Errorf("owner %q, %v", got, err)
		}
		return nil
	})
}
