package compat

import (
	"context"
	"errors"
	"net/http"
	"sync"
)

// Info is the native GET /v1/info, read into T (the fields an adapter
// needs) once, on first use, and kept: the server's limits do not change
// while it runs. The zero value is ready.
type Info[T any] struct {
	mu sync.Mutex
	v  *T
}

// Get returns the info, calling the native API the first time; valid
// refuses an answer the adapter cannot work with (the call is tried again
// next time).
func (i *Info[T]) Get(ctx context.Context, n *Native, header http.Header, valid func(*T) bool) (*T, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.v != nil {
		return i.v, nil
	}
	var v T
	if _, err := n.Call(ctx, http.MethodGet, "/v1/info", header, nil, &v); err != nil {
		return nil, err
	}
	if !valid(&v) {
		return nil, errors.New("the native info has no max_body_bytes")
	}
	i.v = &v
	return i.v, nil
}
