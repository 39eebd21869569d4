package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Client talks to one runbox server. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	hc    *http.Client
	token string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sends every request through hc (its Transport, timeouts
// and redirects policy). The default is http.DefaultClient; WebSocket
// streams use hc for their handshake too.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// WithToken sends "Authorization: Bearer token" with every request,
// WebSocket handshakes included.
func WithToken(token string) Option {
	return func(c *Client) { c.token = token }
}

// New returns a client of the server at baseURL (http or https, e.g.
// "http://127.0.0.1:8080"; a path prefix is kept, for a server behind a
// reverse proxy).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("parse server URL %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: want http://HOST[:PORT] or https://…", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	c := &Client{base: u, hc: http.DefaultClient}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Bounds of what the client reads from the server.
const (
	// maxErrorBytes bounds an error answer's body.
	maxErrorBytes = 1 << 20
	// maxMessageBytes bounds one WebSocket message: a run stream's last
	// message carries the whole /v1/run answer, which a server bounds by
	// its max_response (256 MiB by default) plus the JSON around it.
	maxMessageBytes = 256<<20 + 16<<20
	// maxEventBytes bounds one Server-Sent Events line of a job's events.
	maxEventBytes = 4 << 20
)

// endpoint is the URL of path (already escaped) with query q.
func (c *Client) endpoint(path string, q url.Values) string {
	u := *c.base
	u.RawPath = ""
	s := u.String() + path
	if len(q) > 0 {
		s += "?" + q.Encode()
	}
	return s
}

// header adds the client's headers to h.
func (c *Client) header(h http.Header) {
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
}

// request is one HTTP call.
type request struct {
	method string
	path   string // escaped, from the API's root: /v1/run
	query  url.Values
	json   any       // a body sent as JSON
	raw    io.Reader // a body sent as bytes
	header http.Header
}

// send makes the call and returns the answer when its status is below
// 400; otherwise the answer's problem as an *Error. The caller closes the
// body.
func (c *Client) send(ctx context.Context, r request) (*http.Response, error) {
	var body io.Reader
	ctype := ""
	switch {
	case r.json != nil:
		b, err := json.Marshal(r.json)
		if err != nil {
			return nil, fmt.Errorf("encode %s %s: %w", r.method, r.path, err)
		}
		body, ctype = bytes.NewReader(b), "application/json"
	case r.raw != nil:
		body, ctype = r.raw, "application/octet-stream"
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.endpoint(r.path, r.query), body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	c.header(req.Header)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, readError(resp)
	}
	return resp, nil
}

// call makes the call and decodes a JSON answer into out (when not nil).
func (c *Client) call(ctx context.Context, r request, out any) (*http.Response, error) {
	resp, err := c.send(ctx, r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp, fmt.Errorf("decode the answer of %s %s: %w", r.method, r.path, err)
		}
	}
	// Drain what is left so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBytes))
	return resp, nil
}

// callRaw makes the call and returns the answer's bytes.
func (c *Client) callRaw(ctx context.Context, r request) ([]byte, error) {
	resp, err := c.send(ctx, r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read the answer of %s %s: %w", r.method, r.path, err)
	}
	return b, nil
}

// pathOf joins escaped path segments after /v1.
func pathOf(segments ...string) string {
	var sb strings.Builder
	sb.WriteString("/v1")
	for _, s := range segments {
		sb.WriteByte('/')
		sb.WriteString(url.PathEscape(s))
	}
	return sb.String()
}
