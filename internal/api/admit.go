package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// What a request may hold before it has a box. A body is read into memory
// only as fast as its bytes arrive, each growth of its buffer charged to
// the server's memory budget first; a body the budget cannot take right now
// is answered 429. Before huma decodes it (which holds about decodeFactor
// copies of it, and a tree node per JSON value), its values are counted
// without decoding and the decode is charged too. Once validated, the
// request's charge becomes what it holds until its answer is written: its
// input and its worst-case output.
const (
	// decodeFactor is how many copies of a body exist while it is decoded:
	// ours, huma's buffer, huma's validation tree, the decoded struct.
	decodeFactor = 4
	// inputFactor is how many copies of a body a validated request holds
	// until its answer is written (the decoded strings some fields keep,
	// and the runner's byte copies of files and stdin).
	inputFactor = 2
	// valueBytes is charged per JSON value for the validation tree.
	valueBytes = 256
	// maxJSONDepth bounds nesting; a valid request nests four deep.
	maxJSONDepth = 16
	// firstRead is the first buffer for a body of unknown or large size;
	// it doubles as bytes arrive.
	firstRead = 64 << 10
	// retryAfter is the Retry-After, in seconds, of answers that say the
	// server is momentarily full.
	retryAfter = 1
)

// budget is a count of bytes that requests may hold at once.
type budget struct {
	max int64

	mu   sync.Mutex
	used int64
}

// take reserves n bytes, or reports that they do not fit now.
func (b *budget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.max-b.used {
		return false
	}
	b.used += n
	return true
}

func (b *budget) give(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
}

func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// ticket is one run request's share of the budget, from the first byte of
// its body to the last byte of its answer. Only the request's own
// goroutine uses it.
type ticket struct {
	b       *budget
	held    int64
	bodyLen int64
	rc      *http.ResponseController // the connection's deadlines
}

type ticketKey struct{}

func ticketFrom(ctx context.Context) *ticket {
	t, _ := ctx.Value(ticketKey{}).(*ticket)
	return t
}

// resize makes the ticket hold n bytes, reporting false (and holding what
// it held) when the budget cannot give the difference now.
func (t *ticket) resize(n int64) bool {
	switch {
	case n > t.held:
		if !t.b.take(n - t.held) {
			return false
		}
	case n < t.held:
		t.b.give(t.held - n)
	}
	t.held = n
	return true
}

func (t *ticket) release() { t.resize(0) }

// admitRun reads a run request's body under the memory budget and hands it
// to huma. It runs before huma so that huma never reads from the network:
// a slow body is bounded by the server's read timeout here, a short one is
// a 400 (huma would call it a 500), and memory is charged as bytes arrive.
func (s *Server) admitRun(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		t := &ticket{b: s.budget}
		defer func() {
			t.release()
			s.metrics.reserved.Set(float64(s.budget.inUse()))
		}()
		body, p := s.readBody(ctx, r, t)
		// Decoding and any error answer get a fresh write deadline;
		// handleRun lifts it while the request waits and runs, and sets it
		// again for the answer.
		rc := http.NewResponseController(w)
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if p != nil {
			// The body was not read whole: the connection goes, and what
			// the server reads of the rest is still bound by read_timeout.
			w.Header().Set("Connection", "close")
			writeProblem(w, p)
			return
		}
		// The body is in. The run may take minutes: no read deadline from
		// now on (a client that leaves is still noticed, by the server's
		// background read).
		_ = rc.SetReadDeadline(time.Time{})
		values := 1
		if isJSON(r.Header.Get("Content-Type")) { // huma refuses the others unread
			var rule string
			if values, rule = scanJSON(body, s.maxValues, maxJSONDepth); rule != "" {
				writeProblem(w, invalid(ctx, "body", rule).(*Problem))
				return
			}
		}
		if !t.resize(decodeFactor*int64(len(body)) + int64(values)*valueBytes) {
			writeProblem(w, busy(ctx, "the server is holding as many requests as its memory budget allows; retry later"))
			return
		}
		s.metrics.reserved.Set(float64(s.budget.inUse()))
		t.bodyLen, t.rc = int64(len(body)), rc
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, ticketKey{}, t)))
	})
}

// readBody reads at most MaxBodyBytes, growing its buffer as bytes arrive
// and charging each growth to t first.
func (s *Server) readBody(ctx context.Context, r *http.Request, t *ticket) ([]byte, *Problem) {
	limit := s.cfg.MaxBodyBytes
	tooLarge := func() *Problem {
		return problem(ctx, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", limit),
			"body", fmt.Sprintf("at most %d bytes (max_body)", limit)).(*Problem)
	}
	if r.ContentLength > limit {
		return nil, tooLarge()
	}
	size := min(firstRead, limit+1)
	if r.ContentLength >= 0 && r.ContentLength < size {
		size = r.ContentLength + 1 // +1: EOF is seen without a growth
	}
	full := func() *Problem {
		return busy(ctx, "the server is reading as many request bodies as its memory budget allows; retry later")
	}
	if !t.resize(size) {
		return nil, full()
	}
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				return nil, tooLarge()
			}
			next := min(2*int64(cap(buf)), limit+1)
			// Old and new buffers coexist during the copy.
			if !t.resize(t.held + next) {
				return nil, full()
			}
			nb := make([]byte, len(buf), next)
			copy(nb, buf)
			buf = nb
			t.resize(next)
			s.metrics.reserved.Set(float64(s.budget.inUse()))
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, bodyError(ctx, err)
		}
	}
	if int64(len(buf)) > limit {
		return nil, tooLarge()
	}
	return buf, nil
}

// bodyError is the answer to a body that could not be read.
func bodyError(ctx context.Context, err error) *Problem {
	var ne net.Error
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return problem(ctx, http.StatusRequestTimeout, "the request body did not arrive in time", "body", "must arrive within the server's read_timeout").(*Problem)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return problem(ctx, http.StatusBadRequest, "the request body ended before its Content-Length", "body", "must be as long as its Content-Length").(*Problem)
	}
	return problem(ctx, http.StatusBadRequest, "the request body could not be read", "body", "must be a complete HTTP body").(*Problem)
}

// busy is a 429 that says the server is momentarily full.
func busy(ctx context.Context, msg string) *Problem {
	p := problem(ctx, http.StatusTooManyRequests, msg, "", "capacity").(*Problem)
	p.Errors = nil
	p.RetryAfter = retryAfter
	return p
}

// unavailable is a 503 that says what runbox cannot do now (its queue of
// jobs is full, its NATS does not answer), to be retried later.
func unavailable(ctx context.Context, msg string) *Problem {
	p := problem(ctx, http.StatusServiceUnavailable, msg, "", "unavailable").(*Problem)
	p.Errors = nil
	p.RetryAfter = retryAfter
	return p
}

// writeProblem writes a problem outside huma, in huma's shape.
func writeProblem(w http.ResponseWriter, p *Problem) {
	for k, v := range p.GetHeaders() {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// scanJSON counts the values of a JSON text (an upper bound: every '{',
// '[', ',' and ':' outside strings, plus one) and checks its nesting,
// without decoding anything. Text that is not JSON is left to the decoder
// to refuse.
func scanJSON(b []byte, maxValues, maxDepth int) (values int, rule string) {
	values = 1
	depth := 0
	inString, escaped := false, false
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			values++
			if depth > maxDepth {
				return values, fmt.Sprintf("JSON nested more than %d levels deep", maxDepth)
			}
		case '}', ']':
			depth--
		case ',', ':':
			values++
		}
		if values > maxValues {
			return values, fmt.Sprintf("more than %d JSON values (every list has a maximum: see the schema and /v1/info)", maxValues)
		}
	}
	return values, ""
}

// jsonValues bounds the JSON values of a valid request: its fixed fields
// and small lists, and per file and per case their fields and arguments.
func jsonValues(maxFiles, maxCases int) int {
	return 1024 + 8*maxFiles + (8+2*maxArgs)*maxCases
}

// isJSON reports whether a Content-Type is one huma decodes as JSON.
func isJSON(ct string) bool {
	ct = strings.ToLower(ct)
	return ct == "" || strings.Contains(ct, "json")
}
