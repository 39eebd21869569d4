package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// renewTimeout bounds one renewal of a claim.
const renewTimeout = 5 * time.Second

// Claim records that this node owns session id. While the relay is open it
// renews the claim every third of the bucket's TTL, until Release: the TTL
// only clears the claims of a node that died.
func (r *Relay) Claim(ctx context.Context, id string) error {
	r.claimMu.Lock()
	defer r.claimMu.Unlock()
	if _, err := r.owners.Put(ctx, id, []byte(r.node)); err != nil {
		return fmt.Errorf("claim session %s: %w", id, err)
	}
	r.claims[id] = true
	return nil
}

// Release forgets that this node owns session id; a claim by another node
// is left alone. Failures are logged: the claim then ends with its TTL.
func (r *Relay) Release(ctx context.Context, id string) {
	r.claimMu.Lock()
	defer r.claimMu.Unlock()
	delete(r.claims, id)
	e, err := r.owners.Get(ctx, id)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey):
		return
	case err != nil:
		r.log.Warn("release session claim", "session", id, "err", err)
		return
	case string(e.Value()) != r.node:
		return
	}
	// Only the revision read: a claim made meanwhile by another node stays.
	if err := r.owners.Delete(ctx, id, jetstream.LastRevision(e.Revision())); err != nil {
		r.log.Warn("release session claim", "session", id, "err", err)
	}
}

// Owner returns the name of the node that owns session id, or "" when no
// node does (or id cannot be a session's).
func (r *Relay) Owner(ctx context.Context, id string) (string, error) {
	e, err := r.owners.Get(ctx, id)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("look up the owner of session %s: %w", id, err)
	}
	return string(e.Value()), nil
}

// renew puts this node's claims again before their TTL ends.
func (r *Relay) renew() {
	defer r.wg.Done()
	if r.ownerTTL == 0 {
		return
	}
	t := time.NewTicker(r.ownerTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		r.claimMu.Lock()
		ids := make([]string, 0, len(r.claims))
		for id := range r.claims {
			ids = append(ids, id)
		}
		r.claimMu.Unlock()
		for _, id := range ids {
			r.renewOne(id)
		}
	}
}

func (r *Relay) renewOne(id string) {
	r.claimMu.Lock()
	defer r.claimMu.Unlock()
	if !r.claims[id] || r.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, renewTimeout)
	defer cancel()
	if _, err := r.owners.Put(ctx, id, []byte(r.node)); err != nil {
		r.log.Warn("renew session claim", "session", id, "err", err)
	}
}
