// Package compat holds what the compatibility adapters share. Each peer's
// API is a package below it (internal/compat/<peer>) that translates the
// peer's requests into runbox's own API and its answers back, and has no
// execution path of its own: it calls the native API in process, so that
// validation, limits, admission and the memory budget are the native
// API's, exactly.
package compat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// Native calls runbox's native API in process.
type Native struct {
	h       http.Handler
	maxBody int64
}

// NewNative calls h (the native API's handler); answers larger than
// maxAnswer bytes are refused.
func NewNative(h http.Handler, maxAnswer int64) *Native { return &Native{h: h, maxBody: maxAnswer} }

// Handler is the native API's handler (for calls Call cannot make: a
// WebSocket served in process).
func (n *Native) Handler() http.Handler { return n.h }

// RequestHeader carries the request id the native API gave an adapter's
// request (w's X-Request-Id) into the native calls it makes, so that one
// id finds every log line. Nil when there is none.
func RequestHeader(w http.ResponseWriter) http.Header {
	if id := w.Header().Get("X-Request-Id"); id != "" {
		return http.Header{"X-Request-Id": {id}}
	}
	return nil
}

// Problem is a native API error answer (RFC 9457), as an error.
type Problem struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Errors []struct {
		Location string `json:"location"`
		Message  string `json:"message"`
	} `json:"errors"`
	RetryAfter string `json:"-"`
}

func (p *Problem) Error() string {
	if len(p.Errors) > 0 && p.Errors[0].Location != "" {
		return fmt.Sprintf("%s: %s", p.Errors[0].Location, p.Errors[0].Message)
	}
	return p.Detail
}

// Call sends method path with in as its JSON body (nil: none) and decodes
// a 2xx answer into out (nil: discarded). Any other answer is a *Problem.
// header, when set, adds request headers (e.g. Idempotency-Key).
func (n *Native) Call(ctx context.Context, method, path string, header http.Header, in, out any) (int, error) {
	var body io.Reader = http.NoBody
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, body)
	if err != nil {
		return 0, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.RemoteAddr = "compat"
	w := &recorder{header: http.Header{}, max: n.maxBody}
	n.h.ServeHTTP(w, req)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.tooLarge {
		return w.status, fmt.Errorf("the native answer is larger than %d bytes", n.maxBody)
	}
	if w.status < 200 || w.status > 299 {
		p := &Problem{}
		if json.Unmarshal(w.body.Bytes(), p) != nil || p.Status == 0 {
			p = &Problem{Status: w.status, Title: http.StatusText(w.status), Detail: w.body.String()}
		}
		p.RetryAfter = w.header.Get("Retry-After")
		return w.status, p
	}
	if out != nil && w.body.Len() > 0 {
		if err := json.Unmarshal(w.body.Bytes(), out); err != nil {
			return w.status, fmt.Errorf("decoding the native answer: %w", err)
		}
	}
	return w.status, nil
}

// recorder is a ResponseWriter that keeps a bounded answer.
type recorder struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	max      int64
	tooLarge bool
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if int64(r.body.Len()+len(p)) > r.max {
		r.tooLarge = true
		return 0, fmt.Errorf("answer larger than %d bytes", r.max)
	}
	return r.body.Write(p)
}
