package client

import (
	"context"
	"net/http"
)

// Run compiles (when the language compiles) and runs a program, and
// returns its results: POST /v1/run. A program that fails to compile or
// run is a RunResponse with that status, not an error.
func (c *Client) Run(ctx context.Context, req RunRequest) (*RunResponse, error) {
	var out RunResponse
	if _, err := c.call(ctx, request{method: http.MethodPost, path: "/v1/run", json: req}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Environments lists the server's languages: GET /v1/environments.
func (c *Client) Environments(ctx context.Context) ([]Environment, error) {
	var out []Environment
	if _, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/environments"}, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Info returns the server's version, limits and capacity: GET /v1/info.
func (c *Client) Info(ctx context.Context) (*Info, error) {
	var out Info
	if _, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/info"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Health reports whether the server answers: GET /healthz.
func (c *Client) Health(ctx context.Context) error {
	_, err := c.call(ctx, request{method: http.MethodGet, path: "/healthz"}, nil)
	return err
}
