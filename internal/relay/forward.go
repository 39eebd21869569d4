package relay

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// requestIDHeader is the request id the API answers with; Forward hands
// it to the owner so that both nodes log the request under one id.
const requestIDHeader = "X-Request-Id"

type forwardKey struct{}

// forwardInfo is what Forward tells the proxy's hooks about a request.
type forwardInfo struct {
	owner     string
	requestID string
	remote    string
}

func infoFrom(ctx context.Context) *forwardInfo {
	if fi, ok := ctx.Value(forwardKey{}).(*forwardInfo); ok {
		return fi
	}
	return &forwardInfo{}
}

// Forward sends req to owner's handler and copies the answer to w; an
// upgrade (a WebSocket) is then copied both ways for as long as it lives.
// Call it before reading the body or writing to w; w (or what it Unwraps
// to) must flush, hijack and set deadlines, as net/http's does, and an
// X-Request-Id already set on w goes to the owner too. It answers a problem
// itself when the owner cannot be reached: 503 when the owner (or this
// node) is at its tunnel limit or closing, 508 for a request forwarded
// already, 502 otherwise (the owner did not answer within 5 s).
//
// Deadlines: the owner's handler bounds the exchange as it would a direct
// request, so Forward lifts this connection's write deadline and bounds
// each write to the client instead (30 s: a client that stops reading
// releases the connection); the server's read deadline bounds the request
// body, and is lifted once the body is in.
func (r *Relay) Forward(w http.ResponseWriter, req *http.Request, owner string) {
	fi := &forwardInfo{owner: owner, requestID: w.Header().Get(requestIDHeader), remote: req.RemoteAddr}
	switch {
	case Forwarded(req):
		r.fail(w, req, fi, errLoop)
		return
	case !nodeRE.MatchString(owner):
		r.fail(w, req, fi, errBadOwner)
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	fw := &frontWriter{ResponseWriter: w, rc: rc, stall: r.lim.writeStall}
	// The server writes the end of the answer after Forward returns.
	defer fw.renew()
	out := req.WithContext(context.WithValue(req.Context(), forwardKey{}, fi))
	if req.Body != nil && req.Body != http.NoBody {
		body := &frontBody{ReadCloser: req.Body, rc: rc}
		out.Body = body
		defer body.finish()
	} else {
		_ = rc.SetReadDeadline(time.Time{})
	}
	r.proxy.ServeHTTP(fw, out)
}

// frontBody is the body of a forwarded request. The server's read
// deadline bounds it as it bounds a body read locally; once it is in,
// the deadline goes, because the answer may take minutes and the server's
// background read (which a deadline would cut) is what notices a client
// that leaves.
type frontBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	mu       sync.Mutex
	over     bool // read to the end, or failed
	finished bool // Forward has returned: the deadlines are the server's again
}

func (b *frontBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.mu.Lock()
		if !b.over && !b.finished && errors.Is(err, io.EOF) {
			_ = b.rc.SetReadDeadline(time.Time{})
		}
		b.over = true
		b.mu.Unlock()
	}
	return n, err
}

// finish ends a body the owner did not read whole: the proxy's transport
// may still be blocked reading it, which would hold the connection (and
// the server's answer) until the client sends more. An expired deadline
// wakes that read; the server then closes the connection after the
// answer, as the rest of the body is unread.
func (b *frontBody) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.finished = true
	if !b.over {
		_ = b.rc.SetReadDeadline(time.Now())
	}
}

// rewrite is the proxy's request to the owner.
func (r *Relay) rewrite(pr *httputil.ProxyRequest) {
	fi := infoFrom(pr.In.Context())
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = "relay.invalid" // never resolved: dialContext opens a tunnel
	pr.Out.Host = pr.In.Host
	pr.SetXForwarded()
	pr.Out.Header.Set(ForwardedHeader, r.node)
	if fi.requestID != "" {
		pr.Out.Header.Set(requestIDHeader, fi.requestID)
	}
}

// modifyResponse drops the owner's request id: w has it already (the same
// one, handed over by rewrite).
func (r *Relay) modifyResponse(res *http.Response) error {
	if infoFrom(res.Request.Context()).requestID != "" {
		res.Header.Del(requestIDHeader)
	}
	return nil
}

// dialContext is the proxy transport's dialer: a tunnel to the owner.
func (r *Relay) dialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	fi := infoFrom(ctx)
	return r.dial(ctx, fi.owner, fi.remote)
}

// dial opens a tunnel to owner: it subscribes this end, then asks the
// owner to serve the tunnel and waits for its yes.
func (r *Relay) dial(ctx context.Context, owner, remote string) (net.Conn, error) {
	id := newID()
	c, err := r.openTunnel(id, false, r.node, addr(owner))
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(openMsg{ID: id, From: r.node, Remote: remote})
	ctx, cancel := context.WithTimeout(ctx, r.lim.open)
	defer cancel()
	m, err := r.nc.RequestWithContext(ctx, subjectPrefix+owner+".open", body)
	if err == nil && string(m.Data) != replyOK {
		switch string(m.Data) {
		case replyBusy:
			err = fmt.Errorf("node %s: %w", owner, errBusy)
		case replyClosed:
			err = fmt.Errorf("node %s: %w", owner, errClosed)
		default:
			err = fmt.Errorf("node %s: %w: %.64q", owner, errRefused, m.Data)
		}
	} else if errors.Is(err, nats.ErrNoResponders) {
		err = fmt.Errorf("node %s: %w", owner, errNoOwner)
	} else if err != nil {
		err = fmt.Errorf("open a tunnel to node %s: %w", owner, err)
	}
	if err != nil {
		// The owner may have said yes too late: reset tells it. The
		// cause is Forward's to log.
		c.abort(errUnopened, true)
		return nil, err
	}
	return c, nil
}

// proxyError is the proxy's answer when the owner cannot be reached or
// fails before its answer began.
func (r *Relay) proxyError(w http.ResponseWriter, req *http.Request, err error) {
	r.fail(w, req, infoFrom(req.Context()), err)
}

// problem is an RFC 9457 problem in the API's shape.
type problem struct {
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	RequestID string `json:"request_id,omitempty"`
}

// retryAfter is the Retry-After of a 503, in seconds.
const retryAfter = "1"

// fail answers a request that could not be forwarded: the client gets a
// public message and the request id, the log gets the cause.
func (r *Relay) fail(w http.ResponseWriter, req *http.Request, fi *forwardInfo, err error) {
	status, detail := http.StatusBadGateway, "the node that holds this session did not answer"
	switch {
	case errors.Is(err, errBusy):
		status, detail = http.StatusServiceUnavailable, "too many requests are being forwarded to the node that holds this session; retry later"
	case errors.Is(err, errClosed):
		status, detail = http.StatusServiceUnavailable, "the node is shutting down; retry later"
	case errors.Is(err, errLoop):
		status, detail = http.StatusLoopDetected, "the request was forwarded already"
	}
	if req.Context().Err() != nil {
		r.log.Info("forward ended", "request_id", fi.requestID, "owner", fi.owner, "err", err)
	} else {
		r.log.Warn("forward failed", "request_id", fi.requestID, "owner", fi.owner, "status", status, "err", err)
	}
	h := w.Header()
	if fi.requestID != "" {
		h.Set(requestIDHeader, fi.requestID)
	}
	if status == http.StatusServiceUnavailable {
		h.Set("Retry-After", retryAfter)
	}
	h.Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{Title: http.StatusText(status), Status: status, Detail: detail,
		RequestID: fi.requestID})
}

// frontWriter bounds each write to the forwarding node's client by
// writeStall, instead of the whole answer by the server's write timeout: a
// long poll or a stream may last, a client that stops reading may not.
type frontWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

func (f *frontWriter) renew() { _ = f.rc.SetWriteDeadline(time.Now().Add(f.stall)) }

func (f *frontWriter) WriteHeader(code int) {
	f.renew()
	f.ResponseWriter.WriteHeader(code)
}

func (f *frontWriter) Write(p []byte) (int, error) {
	f.renew()
	return f.ResponseWriter.Write(p)
}

// FlushError is what http.ResponseController.Flush calls.
func (f *frontWriter) FlushError() error {
	f.renew()
	return f.rc.Flush()
}

// Hijack (for an upgrade) gives the connection with no read deadline (the
// upgraded protocol may be idle) and each write bounded.
func (f *frontWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := f.rc.Hijack()
	if err != nil {
		return nil, nil, err
	}
	_ = conn.SetReadDeadline(time.Time{})
	_ = conn.SetWriteDeadline(time.Now().Add(f.stall)) // the 101 answer, written through brw
	return &stallConn{Conn: conn, stall: f.stall}, brw, nil
}

// Unwrap lets http.ResponseController reach w.
func (f *frontWriter) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// stallConn bounds each write by stall.
type stallConn struct {
	net.Conn
	stall time.Duration
}

func (s *stallConn) Write(p []byte) (int, error) {
	_ = s.Conn.SetWriteDeadline(time.Now().Add(s.stall))
	return s.Conn.Write(p)
}

var (
	_ http.Hijacker = (*frontWriter)(nil)
	_ net.Conn      = (*stallConn)(nil)
)
