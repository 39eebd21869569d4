package keys

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/runbox-dev/runbox/internal/job"
)

// The cluster's store: a real (embedded) NATS server's KV bucket, and a
// keyring on another connection that follows it, as a second node's does.
func TestKVStore(t *testing.T) {
	emb, err := job.StartEmbedded(t.TempDir(), "keys-test")
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func() *KVStore {
		nc, err := emb.Connect("keys-test")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		s, err := OpenKV(ctx, nc, 1)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cli, node := open(), open()
	kr, err := NewKeyring(node, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if !kr.Empty() {
		ks, err := node.List()
		t.Fatalf("a new bucket's keyring is not empty: %+v %v", ks, err)
	}
	if err := kr.Follow(ctx); err != nil {
		t.Fatal(err)
	}
	k, secret, _ := New("dave", Quota{Sessions: 3})
	if err := cli.Add(k); err != nil {
		t.Fatal(err)
	}
	if err := cli.Add(k); !errors.Is(err, ErrExists) {
		t.Fatalf("second add: %v", err)
	}
	eventually(t, func() bool { c, ok := kr.Authenticate(secret); return ok && c.Quota().Sessions == 3 })
	if ks, err := node.List(); err != nil || len(ks) != 1 || ks[0].Name != "dave" || ks[0].Hash != Hash(secret) {
		t.Fatalf("list: %+v %v", ks, err)
	}
	if err := cli.Remove("dave"); err != nil {
		t.Fatal(err)
	}
	if err := cli.Remove("dave"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
	eventually(t, func() bool { _, ok := kr.Authenticate(secret); return !ok && kr.Empty() })
}
