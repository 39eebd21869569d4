package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/danielgtaylor/huma/v2"

	"github.com/runbox-dev/runbox/internal/result"
	"github.com/runbox-dev/runbox/internal/runner"
)

// runStream serves GET /v1/run/stream: the first message is a /v1/run body
// (validated as POST /v1/run validates it, held in the memory budget,
// waiting for a box in the same queue); then the run's steps and output
// arrive as they happen, stdin messages feed the run, and the last message
// is the /v1/run response.
func (s *Server) runStream(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, ok := s.accept(w, r, s.cfg.MaxBodyBytes)
	if !ok {
		return
	}
	defer c.CloseNow()
	k := &socket{c: c, timeout: s.cfg.WriteTimeout}
	t := &ticket{b: s.budget}
	defer func() {
		t.release()
		s.metrics.reserved.Set(float64(s.budget.inUse()))
	}()
	req, err := s.firstRun(ctx, c, t)
	if err != nil {
		k.fail(ctx, err, websocket.StatusPolicyViolation)
		return
	}
	done, err := s.takeBox(ctx)
	if err != nil {
		k.fail(ctx, err, websocket.StatusTryAgainLater)
		return
	}
	var cpu time.Duration
	defer func() { done(cpu) }()
	release, err := s.queue.acquire(ctx, s.metrics)
	if err != nil {
		if errors.Is(err, errQueueFull) {
			k.fail(ctx, busy(ctx, "all boxes are busy and the queue is full; retry later"), websocket.StatusTryAgainLater)
		}
		return
	}
	defer release()

	out := &outbox{wake: make(chan struct{}, 1)}
	stdinR, stdinW := io.Pipe()
	sig := &runner.Signaler{}
	req.Stream = &runner.Stream{
		Signals: sig,
		Stage: func(step string, index int) {
			m := WSOut{Type: "stage", Stage: step}
			if step == "case" {
				m.Index = &index
			}
			out.push(m, nil)
		},
		Stdout: streamWriter{out, "stdout"},
		Stderr: streamWriter{out, "stderr"},
		Stdin:  stdinR,
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	// The client's messages: stdin for the run.
	go func() {
		defer stdinW.Close()
		for {
			var m WSIn
			if _, err := readJSON(rctx, c, &m); err != nil {
				if errors.Is(err, errBadMessage) && rctx.Err() == nil {
					k.warn(rctx, invalid(rctx, "message", err.Error()))
					continue
				}
				stop() // the client went: the run is cancelled
				return
			}
			switch m.Type {
			case "stdin":
				b, err := stdinBytes(m)
				if err != nil {
					k.warn(rctx, invalid(rctx, "message.data", err.Error()))
					continue
				}
				if _, err := stdinW.Write(b); err != nil {
					k.warn(rctx, problem(rctx, http.StatusConflict, "stdin is closed", "message", "the program's input is closed"))
				}
			case "close_stdin":
				stdinW.Close()
			case "signal":
				n, ok := signals[m.Signal]
				if !ok {
					k.warn(rctx, invalid(rctx, "message.signal", signalRule))
					continue
				}
				if err := sig.Signal(n); err != nil {
					k.warn(rctx, problem(rctx, http.StatusConflict, "cannot signal", "message", err.Error()))
				}
			default:
				k.warn(rctx, invalid(rctx, "message.type", "stdin, close_stdin or signal"))
			}
		}
	}()
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		out.drain(rctx, k)
	}()
	resp, err := s.run.Run(rctx, req)
	cpu = resp.CPUTime()
	stdinR.CloseWithError(runner.ErrCommandEnded)
	if err != nil {
		out.close(nil)
		<-sent
		perr := s.runError(ctx, req, err)
		k.fail(ctx, perr, closeCode(perr))
		return
	}
	var buf bytes.Buffer
	rw := result.NewWriter(&buf)
	encodeRun(rw, resp)
	_ = rw.Flush()
	out.close(&WSOut{Type: "done", Response: json.RawMessage(buf.Bytes())})
	<-sent
	_ = c.Close(websocket.StatusNormalClosure, "")
}

// firstRun reads and checks the first message of a run stream.
func (s *Server) firstRun(ctx context.Context, c *websocket.Conn, t *ticket) (runner.Request, error) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.ReadTimeout)
	defer cancel()
	typ, body, err := c.Read(rctx)
	if err != nil {
		return runner.Request{}, invalid(ctx, "message", "no /v1/run body arrived in time: "+err.Error())
	}
	if typ != websocket.MessageText {
		return runner.Request{}, invalid(ctx, "message", "messages are JSON text")
	}
	values, rule := scanJSON(body, s.maxValues, maxJSONDepth)
	if rule != "" {
		return runner.Request{}, invalid(ctx, "body", rule)
	}
	if !t.resize(decodeFactor*int64(len(body)) + int64(values)*valueBytes) {
		return runner.Request{}, busy(ctx, "the server is holding as many requests as its memory budget allows; retry later")
	}
	t.bodyLen = int64(len(body))
	// The schema's rules first, as huma checks a POST /v1/run body.
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		return runner.Request{}, invalid(ctx, "body", "not a JSON object: "+err.Error())
	}
	delete(raw, "type") // a client may tag its first message
	reg := s.hapi.OpenAPI().Components.Schemas
	schema := reg.Schema(reflect.TypeOf(RunBody{}), true, "RunBody")
	res := &huma.ValidateResult{}
	huma.Validate(reg, schema, huma.NewPathBuffer([]byte("body"), 4), huma.ModeWriteToServer, raw, res)
	if len(res.Errors) > 0 {
		p := problem(ctx, http.StatusUnprocessableEntity, "validation failed", "", "").(*Problem)
		p.Errors = nil
		for _, e := range res.Errors {
			var d *huma.ErrorDetail
			if errors.As(e, &d) {
				p.Errors = append(p.Errors, d)
			}
		}
		return runner.Request{}, p
	}
	var b RunBody
	if err := json.Unmarshal(body, &b); err != nil {
		return runner.Request{}, invalid(ctx, "body", err.Error())
	}
	req, need, err := s.validate(context.WithValue(ctx, ticketKey{}, t), &b)
	if err != nil {
		return req, err
	}
	return req, s.reserve(context.WithValue(ctx, ticketKey{}, t), need)
}

// outbox queues a run stream's messages for the socket. Its producers
// never block (the runner's output readers write into it); what it holds
// is bounded by the run's output limits, counted in the request's budget.
type outbox struct {
	mu     sync.Mutex
	msgs   []WSOut
	data   [][]byte
	closed bool
	last   *WSOut
	wake   chan struct{}
}

// push queues a message; data, when set, is copied. Output that waits
// for the socket joins the output queued before it (same stream, up to a
// message's bound): a program that writes a byte at a time must not make
// the queue hold a message per byte, many times its output limit.
func (o *outbox) push(m WSOut, data []byte) {
	o.mu.Lock()
	if n := len(o.msgs); data != nil && n > 0 && o.data[n-1] != nil && o.msgs[n-1].Type == m.Type && len(o.data[n-1])+len(data) <= wsChunkBytes {
		o.data[n-1] = append(o.data[n-1], data...)
	} else {
		if data != nil {
			data = bytes.Clone(data)
		}
		o.msgs = append(o.msgs, m)
		o.data = append(o.data, data)
	}
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// close ends the queue; last, when set, is sent after everything else.
func (o *outbox) close(last *WSOut) {
	o.mu.Lock()
	o.closed, o.last = true, last
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// drain sends the queue until it is closed and empty.
func (o *outbox) drain(ctx context.Context, k *socket) {
	for {
		o.mu.Lock()
		msgs, data, closed, last := o.msgs, o.data, o.closed, o.last
		o.msgs, o.data = nil, nil
		o.mu.Unlock()
		for i, m := range msgs {
			var err error
			if data[i] != nil {
				err = k.sendData(ctx, m.Type, data[i])
			} else {
				err = k.send(ctx, m)
			}
			if err != nil {
				return
			}
		}
		if closed && len(msgs) == 0 {
			if last != nil {
				_ = k.send(ctx, *last)
			}
			return
		}
		if len(msgs) > 0 {
			continue
		}
		select {
		case <-o.wake:
		case <-ctx.Done():
			return
		}
	}
}

// streamWriter is a runner stream's output into an outbox.
type streamWriter struct {
	o      *outbox
	stream string
}

func (w streamWriter) Write(p []byte) (int, error) {
	if len(p) > 0 {
		w.o.push(WSOut{Type: w.stream}, p)
	}
	return len(p), nil
}
