package sandrun

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/runbox-dev/runbox/internal/compat"
)

// Bounds of a stream.
const (
	// maxEventLine bounds one line of the native SSE answer (one event's
	// JSON); a longer one ends the stream with an error frame.
	maxEventLine = 4 << 20
	// streamWriteTimeout bounds one frame's write: a client that reads
	// nothing for that long is gone. Until then the native events wait
	// for it (io.Pipe hands each write over only when it is read), so
	// nothing is buffered for a slow client.
	streamWriteTimeout = 30 * time.Second
	// maxClientMessage bounds what a client may send (Sandrun allocates
	// whatever length a frame declares, up to 2^64).
	maxClientMessage = 4096
)

// stream is WebSocket /stream/{id}: Sandrun's plain-text frames, fed
// from the native job's events (GET /v1/jobs/{id}/events) as they come.
// Sandrun sends a running job's output only after it exits and wakes
// only when the client sends a frame; here stdout and stderr chunks go
// out live ("[STDERR]\n" before each stderr chunk), and client frames
// are read and dropped.
func (h *handler) stream(w http.ResponseWriter, r *http.Request) error {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return badRequest("Expected a WebSocket upgrade")
	}
	// The server's read and write deadlines end here: the socket lives as
	// long as the job (the native streams do the same).
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	// Any origin, as Sandrun (and its Access-Control-Allow-Origin: *):
	// the job id, 128 random bits, is what grants access, not a cookie.
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return nil // Accept has answered
	}
	defer c.CloseNow()
	c.SetReadLimit(maxClientMessage)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		// Reading answers pings and notices the client's close.
		defer cancel()
		for {
			if _, _, err := c.Read(ctx); err != nil {
				return
			}
		}
	}()
	send := func(s string) error {
		wctx, wcancel := context.WithTimeout(ctx, streamWriteTimeout)
		defer wcancel()
		return c.Write(wctx, websocket.MessageText, []byte(strings.ToValidUTF8(s, "\uFFFD")))
	}
	id := r.PathValue("id")
	j, err := h.getJob(w, r.WithContext(ctx))
	if err != nil {
		_ = send("[ERROR] Job not found: " + id + "\n")
		return c.Close(websocket.StatusNormalClosure, "")
	}
	if j.Status != "queued" && j.Status != "running" {
		_ = sendDone(j, send)
		return c.Close(websocket.StatusNormalClosure, "")
	}
	if err := send("[STATUS] Job status: " + j.Status + "\n"); err != nil {
		return nil
	}
	err = h.events(ctx, w, id, func(ev event) error {
		switch {
		case ev.Type == "output" && ev.Stream == "stderr":
			return send("[STDERR]\n" + ev.text())
		case ev.Type == "output":
			return send(ev.text())
		case ev.Type == "status" && ev.Status == "running":
			return send("[STATUS] Job started\n")
		case ev.Type == "status" && ev.Status != "queued":
			return errEnded
		}
		return nil
	})
	switch {
	case errors.Is(err, errEnded) || err == nil:
		// The job ended (or its events did): its result says how.
		final, gerr := h.getJob(w, r.WithContext(ctx))
		if gerr != nil {
			return nil
		}
		if err := send(doneLine(final)); err != nil {
			return nil
		}
		return c.Close(websocket.StatusNormalClosure, "")
	case ctx.Err() != nil:
		return nil
	default:
		_ = send("[ERROR] " + err.Error() + "\n")
		return c.Close(websocket.StatusInternalError, "")
	}
}

// sendDone sends an ended job as Sandrun does: its stdout, its stderr,
// and the [DONE] line.
func sendDone(j *job, send func(string) error) error {
	if r := j.run(); r != nil {
		if err := send(r.Stdout); err != nil {
			return err
		}
		if err := send("[STDERR]\n" + r.Stderr); err != nil {
			return err
		}
	}
	return send(doneLine(j))
}

// doneLine is Sandrun's last frame: "[DONE] Job completed (exit=0,
// CPU=0.020000s, Mem=9MB)".
func doneLine(j *job) string {
	r := j.run()
	if r == nil {
		return "[DONE] Job " + sandrunStatus(j) + "\n"
	}
	return fmt.Sprintf("[DONE] Job %s (exit=%d, CPU=%.6fs, Mem=%dMB)\n", sandrunStatus(j), exitCode(r), float64(r.CPUTimeMS)/1000, r.MemoryBytes>>20)
}

// errEnded stops reading events at the job's end.
var errEnded = errors.New("job ended")

// event is a native job event (job.Event).
type event struct {
	Type       string `json:"type"`
	Status     string `json:"status"`
	Stream     string `json:"stream"`
	Data       string `json:"data"`
	DataBase64 []byte `json:"data_base64"`
}

func (ev event) text() string {
	if ev.Data == "" && len(ev.DataBase64) > 0 {
		return string(ev.DataBase64)
	}
	return ev.Data
}

// events reads the native job's SSE answer in process, calling f for
// each event as it comes, until the answer ends or f fails.
// compat.Native.Call buffers a whole answer, so the native handler is
// served here with a ResponseWriter whose body is an io.Pipe.
func (h *handler) events(ctx context.Context, w http.ResponseWriter, id string, f func(event) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id)+"/events", http.NoBody)
	if err != nil {
		return err
	}
	for k, v := range compat.RequestHeader(w) {
		req.Header[k] = v
	}
	req.RemoteAddr = "compat"
	pr, pw := io.Pipe()
	pwr := &pipeWriter{header: http.Header{}, pw: pw, started: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.n.Handler().ServeHTTP(pwr, req)
		pwr.start(http.StatusOK)
		pw.Close()
	}()
	defer func() {
		cancel()
		pr.CloseWithError(context.Canceled) // unblocks a pending write
		<-done
	}()
	select {
	case <-pwr.started:
	case <-ctx.Done():
		return ctx.Err()
	}
	if pwr.status != http.StatusOK {
		return fmt.Errorf("the native events answered %d", pwr.status)
	}
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventLine)
	for sc.Scan() {
		data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: "))
		if !ok {
			continue
		}
		var ev event
		if json.Unmarshal(data, &ev) != nil {
			continue
		}
		if err := f(ev); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading the native events: %w", err)
	}
	return nil
}

// pipeWriter is an http.ResponseWriter whose body goes to an io.Pipe:
// each Write returns once the reader has taken it, which is the
// back-pressure (and makes Flush a no-op).
type pipeWriter struct {
	header  http.Header
	pw      *io.PipeWriter
	once    sync.Once
	status  int // set before started is closed
	started chan struct{}
}

var _ http.Flusher = (*pipeWriter)(nil)

func (p *pipeWriter) Header() http.Header { return p.header }

func (p *pipeWriter) start(code int) {
	p.once.Do(func() {
		p.status = code
		close(p.started)
	})
}

func (p *pipeWriter) WriteHeader(code int) { p.start(code) }

func (p *pipeWriter) Write(b []byte) (int, error) {
	p.start(http.StatusOK)
	return p.pw.Write(b)
}

func (p *pipeWriter) Flush() {}
