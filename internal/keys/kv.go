package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the NATS KV bucket of a cluster's keys, one entry a key.
const Bucket = "runbox-api-keys"

// opTimeout bounds one store operation.
const opTimeout = 10 * time.Second

// KVStore keeps keys in a NATS KV bucket: every node of a cluster sees a
// change as it is made (Watch).
type KVStore struct {
	kv jetstream.KeyValue
}

var _ Store = (*KVStore)(nil)

// OpenKV opens (or creates) the keys bucket over nc, with replicas copies.
func OpenKV(ctx context.Context, nc *nats.Conn, replicas int) (*KVStore, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: Bucket, History: 1,
		Storage: jetstream.FileStorage, Replicas: max(replicas, 1)})
	if err != nil {
		return nil, fmt.Errorf("keys bucket: %w", err)
	}
	return &KVStore{kv: kv}, nil
}

// List returns every key.
func (s *KVStore) List() ([]Key, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout) // Store has no context: bounded here
	defer cancel()
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var ks []Key
	for name := range lister.Keys() {
		e, err := s.kv.Get(ctx, name)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		var k Key
		if err := json.Unmarshal(e.Value(), &k); err != nil {
			return nil, fmt.Errorf("key %s: %w", name, err)
		}
		ks = append(ks, k)
	}
	return ks, nil
}

// Add stores k; Create fails when the name is taken.
func (s *KVStore) Add(k Key) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	b, err := json.Marshal(k)
	if err != nil {
		return err
	}
	_, err = s.kv.Create(ctx, k.Name, b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return ErrExists
	}
	return err
}

// Remove deletes the key named name.
func (s *KVStore) Remove(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if _, err := s.kv.Get(ctx, name); errors.Is(err, jetstream.ErrKeyNotFound) {
		return ErrNotFound
	} else if err != nil {
		return err
	}
	return s.kv.Purge(ctx, name)
}

// Watch calls changed after every change to the bucket, until ctx ends.
func (s *KVStore) Watch(ctx context.Context, changed func()) error {
	w, err := s.kv.WatchAll(ctx, jetstream.MetaOnly())
	if err != nil {
		return err
	}
	go func() {
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-w.Updates():
				if !ok {
					return
				}
				changed()
			}
		}
	}()
	return nil
}
