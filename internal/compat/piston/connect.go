package piston

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/runbox-dev/runbox/internal/compat"
)

// Piston's interactive protocol (GET /api/v2/connect, api/v2.js): the
// client sends init (an execute body), then data {stream: "stdin"} and
// signal; the server sends runtime, stage, data, exit and error, and
// closes with one of these codes.
const (
	closeAlreadyInitialized websocket.StatusCode = 4000
	closeInitTimeout        websocket.StatusCode = 4001
	closeError              websocket.StatusCode = 4002
	closeNotInitialized     websocket.StatusCode = 4003
	closeOnlyStdin          websocket.StatusCode = 4004
	closeInvalidSignal      websocket.StatusCode = 4005
	closeJobCompleted       websocket.StatusCode = 4999
)

// Bounds of a connect socket.
const (
	// initTimeout is Piston's: a socket without init is closed after it.
	initTimeout = time.Second
	// writeTimeout bounds one message's write to the client: a client that
	// does not read for that long is gone.
	writeTimeout = 30 * time.Second
)

// States of a connect socket.
const (
	waiting int32 = iota // for init
	running              // init arrived
	closing              // init timed out
)

// clientMessage is a message of a Piston client (init's other fields are
// read as an execute body).
type clientMessage struct {
	Type   string          `json:"type"`
	Stream json.RawMessage `json:"stream"`
	Data   json.RawMessage `json:"data"`
	Signal json.RawMessage `json:"signal"`
}

// Messages of the server.
type (
	runtimeMessage struct {
		Type     string `json:"type"`
		Language string `json:"language"`
		Version  string `json:"version"`
	}
	stageMessage struct {
		Type  string `json:"type"`
		Stage string `json:"stage"`
	}
	dataMessage struct {
		Type   string `json:"type"`
		Stream string `json:"stream"`
		Data   string `json:"data"`
	}
	exitMessage struct {
		Type   string  `json:"type"`
		Stage  string  `json:"stage"`
		Code   *int    `json:"code"`
		Signal *string `json:"signal"`
	}
	errorMessage struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	}
)

// socket is a Piston client's WebSocket. Writes may come from the read
// loop and the run's relay at once (websocket.Conn allows it).
type socket struct {
	c *websocket.Conn
}

func (s *socket) send(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	return s.c.Write(ctx, websocket.MessageText, b)
}

// fatal tells the client why and closes, as Piston does: the reason
// travels in a message since a close reason holds 123 bytes.
func (s *socket) fatal(ctx context.Context, msg string) {
	_ = s.send(ctx, errorMessage{"error", msg})
	_ = s.c.Close(closeError, "Notified Error")
}

func (h *handler) connect(w http.ResponseWriter, r *http.Request) {
	if h.stream == nil {
		writeMessage(w, http.StatusNotImplemented, "this server does not serve /api/v2/connect")
		return
	}
	info, err := h.info(r.Context(), w)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	header := compat.RequestHeader(w)
	// The server's read and write deadlines end here: the socket lives as
	// long as its run (the native run stream does the same).
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered
	}
	defer c.CloseNow()
	c.SetReadLimit(bodyFactor * info.MaxBodyBytes)
	s := &socket{c: c}

	ctx, cancel := context.WithCancel(r.Context())
	var relays sync.WaitGroup
	defer func() {
		cancel()
		relays.Wait()
	}()
	var state atomic.Int32
	timer := time.AfterFunc(initTimeout, func() {
		if state.CompareAndSwap(waiting, closing) {
			_ = c.Close(closeInitTimeout, "Initialization Timeout")
		}
	})
	defer timer.Stop()

	var st StreamConn
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			return // the client went, or the socket was closed
		}
		var m clientMessage
		if err := json.Unmarshal(b, &m); err != nil {
			s.fatal(ctx, err.Error())
			return
		}
		switch m.Type {
		case "init":
			if !state.CompareAndSwap(waiting, running) {
				if state.Load() == running {
					_ = c.Close(closeAlreadyInitialized, "Already Initialized")
				}
				return
			}
			timer.Stop()
			var j *job
			if st, j, err = h.start(ctx, w, r, b, info, header); err != nil {
				s.fatal(ctx, err.Error())
				return
			}
			relays.Add(1)
			go func(st StreamConn) {
				defer relays.Done()
				defer st.Close()
				h.relay(ctx, s, st, j)
			}(st)
		case "data":
			if state.Load() != running {
				_ = c.Close(closeNotInitialized, "Not yet initialized")
				return
			}
			if stream, _ := str(m.Stream); stream != "stdin" {
				_ = c.Close(closeOnlyStdin, "Can only write to stdin")
				return
			}
			data, ok := str(m.Data)
			if !ok {
				s.fatal(ctx, "data must be a string")
				return
			}
			// An error means the run has ended; its relay closes the socket.
			_ = st.Stdin(ctx, []byte(data))
		case "signal":
			if state.Load() != running {
				_ = c.Close(closeNotInitialized, "Not yet initialized")
				return
			}
			sig, _ := str(m.Signal)
			if signals[sig] == 0 {
				_ = c.Close(closeInvalidSignal, "Invalid signal")
				return
			}
			// Delivered to the program running now; one the native API
			// does not send (SIGCHLD, SIGURG, SIGPROF: runbox's init
			// keeps them) or one between two stages is dropped, as a
			// signal to a process that is gone is.
			_ = st.Signal(ctx, sig)
		}
	}
}

// start checks an init message as an execute body and opens the native
// run stream. Its error is the message for the client.
func (h *handler) start(ctx context.Context, w http.ResponseWriter, r *http.Request, b []byte, info *nativeInfo, header http.Header) (StreamConn, *job, error) {
	j, err := h.job(ctx, w, b, info)
	if err != nil {
		return nil, nil, h.public(w, r, err)
	}
	// Piston ignores init's stdin: the program reads what data sends.
	j.body.Stdin = ""
	body, err := json.Marshal(j.body)
	if err != nil {
		return nil, nil, h.public(w, r, err)
	}
	st, err := h.stream(ctx, header, body)
	if err != nil {
		return nil, nil, h.public(w, r, err)
	}
	return st, j, nil
}

// public is err as the client may read it: a failure says what the
// client did; anything else is runbox's, logged.
func (h *handler) public(w http.ResponseWriter, r *http.Request, err error) error {
	var f *failure
	if errors.As(err, &f) {
		return f
	}
	id := w.Header().Get("X-Request-Id")
	h.log.Error("piston connect failed", "request_id", id, "path", r.URL.Path, "err", err)
	return errors.New("runbox failed; request id " + id)
}

// relay sends the native run stream's messages as Piston's: runtime once
// the run has begun, stage, data, an exit per stage, and the close.
//
// The native stream says when a stage starts, not how one ended: a run
// stage only starts after a compile that succeeded, so the compile's exit
// (code 0) is sent then; the last stage's exit comes from the native
// answer (done). Back-pressure: each message is written before the next
// is read, so a slow client slows the native side, which holds at most the
// run's output limits.
func (h *handler) relay(ctx context.Context, s *socket, st StreamConn, j *job) {
	begun, compiled := false, false
	var native *compat.Problem // the native side's last error message
	out := map[string]*utf8Carry{"stdout": {}, "stderr": {}}
	for {
		ev, err := st.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return // the client went, or the socket was closed
			}
			msg := "the run ended without a result"
			if native != nil {
				msg = problemMessage(native)
			}
			s.fatal(ctx, msg)
			return
		}
		if !begun && ev.Type != "error" {
			begun = true
			if s.send(ctx, runtimeMessage{"runtime", j.env.Name, semver(j.env.Version)}) != nil {
				return
			}
		}
		var msgs []any
		switch ev.Type {
		case "stage":
			if ev.Stage == "compile" {
				compiled = true
			}
			if ev.Stage == "run" && compiled {
				msgs = append(msgs, exitMessage{Type: "exit", Stage: "compile", Code: ptr(0)})
			}
			msgs = append(msgs, stageMessage{"stage", ev.Stage})
		case "stdout", "stderr":
			if text := out[ev.Type].text(ev.Data); text != "" {
				msgs = append(msgs, dataMessage{"data", ev.Type, text})
			}
		case "done":
			for _, name := range []string{"stdout", "stderr"} {
				if text := out[name].flush(); text != "" {
					msgs = append(msgs, dataMessage{"data", name, text})
				}
			}
			var resp nativeResponse
			if err := json.Unmarshal(ev.Response, &resp); err != nil {
				h.log.Error("piston connect: decode the native answer", "err", err)
				s.fatal(ctx, "runbox failed")
				return
			}
			res := toResult(&resp)
			last := exitMessage{Type: "exit", Stage: "run", Code: res.Run.Code, Signal: res.Run.Signal}
			if resp.Run == nil {
				last.Stage = "compile"
			}
			msgs = append(msgs, last)
		case "error":
			// A warning (the socket goes on) or the reason of the close
			// that follows: only the close tells.
			native = ev.Error
		}
		for _, m := range msgs {
			if s.send(ctx, m) != nil {
				return
			}
		}
		if ev.Type == "done" {
			_ = s.c.Close(closeJobCompleted, "Job Completed")
			return
		}
	}
}

// utf8Carry makes a stream's chunks text: a character split between two
// chunks is kept back until its end arrives; other bytes that are not
// UTF-8 become U+FFFD (Piston's Buffer.toString does the same, chunk by
// chunk).
type utf8Carry struct {
	rest []byte
}

func (c *utf8Carry) text(p []byte) string {
	b := append(c.rest, p...)
	cut := len(b)
	// At most the last 3 bytes can be the start of a character yet to end.
	for i := len(b) - 1; i >= 0 && i >= len(b)-3; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				cut = i
			}
			break
		}
	}
	c.rest = append([]byte(nil), b[cut:]...)
	return strings.ToValidUTF8(string(b[:cut]), "\uFFFD")
}

// flush is what was kept back, at the stream's end.
func (c *utf8Carry) flush() string {
	s := strings.ToValidUTF8(string(c.rest), "\uFFFD")
	c.rest = nil
	return s
}
