package relay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/runbox-dev/runbox/internal/testwait"
)

// frontTimeout is the front server's read and write timeout, shorter than
// the slow answer: Forward must lift it.
const frontTimeout = time.Second

const (
	blobSize = 16<<20 + 7
	bigSize  = 16 << 20
	wsCount  = 200
)

// eventually polls until a condition holds (testwait.Eventually).
var eventually = testwait.Eventually

// startNATS starts an embedded NATS server with JetStream, as
// internal/job does.
func startNATS(t *testing.T) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{DontListen: true, JetStream: true, StoreDir: t.TempDir(),
		NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		t.Fatal("NATS did not start")
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv
}

func connect(t *testing.T, srv *server.Server, name string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name(name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// startRelay starts node's relay on its own connection.
func startRelay(t *testing.T, srv *server.Server, node string, h http.Handler, ttl time.Duration, lim limits) (*Relay, *nats.Conn) {
	t.Helper()
	nc := connect(t, srv, node)
	if h == nil {
		h = http.NotFoundHandler()
	}
	r, err := newRelay(context.Background(), nc, node, h, ttl, 1, discard, lim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, nc
}

// startFront is node a's public server: it forwards everything to owner,
// under a request id, with short timeouts as the API has.
func startFront(t *testing.T, a *Relay, owner string) *httptest.Server {
	t.Helper()
	var mu sync.Mutex
	n := 0
	front := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		w.Header().Set(requestIDHeader, fmt.Sprintf("req-%d", n))
		mu.Unlock()
		a.Forward(w, r, owner)
	}))
	front.Config.ReadTimeout, front.Config.WriteTimeout = frontTimeout, frontTimeout
	front.Start()
	t.Cleanup(front.Close)
	return front
}

func noTunnels(rs ...*Relay) func() error {
	return func() error {
		for _, r := range rs {
			if n := len(r.open()); n != 0 {
				return fmt.Errorf("node %s has %d tunnels open", r.node, n)
			}
		}
		return nil
	}
}

// noGoroutines fails while a goroutine runs this package's code, the
// tests' own aside.
func noGoroutines() error {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var leaked []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "runbox/internal/relay.") && !strings.Contains(g, "runbox/internal/relay.Test") {
			leaked = append(leaked, g)
		}
	}
	if len(leaked) > 0 {
		return fmt.Errorf("%d goroutines left:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
	}
	return nil
}

type echoed struct {
	Method, Path, Query, Test, Forwarded, Remote, RequestID string
}

// owner is node b's handler.
type owner struct {
	release chan struct{} // lets /slow finish
	left    chan struct{} // /wait saw its client leave
}

func (o *owner) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /echo", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(echoed{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
			Test: r.Header.Get("X-Test"), Forwarded: r.Header.Get(ForwardedHeader), Remote: r.RemoteAddr,
			RequestID: r.Header.Get(requestIDHeader)})
	})
	mux.HandleFunc("PUT /blob", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	})
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) {
		b := randBytes(2, bigSize)
		for len(b) > 0 {
			k := min(len(b), 1<<20)
			if _, err := w.Write(b[:k]); err != nil {
				return
			}
			b = b[k:]
		}
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "first")
		_ = http.NewResponseController(w).Flush()
		select {
		case <-o.release:
		case <-r.Context().Done():
			return
		}
		// Past the front's write timeout, as a long poll goes.
		time.Sleep(frontTimeout + 500*time.Millisecond)
		fmt.Fprintln(w, "second")
	})
	mux.HandleFunc("GET /wait", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_ = http.NewResponseController(w).Flush()
		<-r.Context().Done()
		o.left <- struct{}{}
	})
	mux.HandleFunc("PUT /deadline", func(w http.ResponseWriter, r *http.Request) {
		// The owner's deadlines apply to a tunnel as to a TCP conn.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := io.ReadAll(r.Body); err != nil {
			w.WriteHeader(http.StatusRequestTimeout)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(2 << 20)
		ctx := r.Context()
		for range wsCount {
			typ, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, b); err != nil {
				return
			}
		}
		_ = c.Close(websocket.StatusNormalClosure, "done")
	})
	return mux
}

// wsMessage is the test's i-th message: sizes from 0 to 1 MiB around the
// frame-length boundaries, text and binary.
func wsMessage(i int) (websocket.MessageType, []byte) {
	sizes := []int{0, 1, 125, 126, 127, 65535, 65536, 1 << 20}
	n := sizes[i%len(sizes)]
	if i%3 == 0 {
		n = int(randBytes(uint64(i), 3)[0])<<9 + i
	}
	b := randBytes(uint64(1000+i), n)
	if i%2 == 0 {
		for j := range b {
			b[j] = 'a' + b[j]%26
		}
		return websocket.MessageText, b
	}
	return websocket.MessageBinary, b
}

func TestForward(t *testing.T) {
	srv := startNATS(t)
	o := &owner{release: make(chan struct{}), left: make(chan struct{}, 1)}
	a, _ := startRelay(t, srv, "a", nil, time.Minute, defaultLimits())
	b, _ := startRelay(t, srv, "b", o.routes(), time.Minute, defaultLimits())
	front := startFront(t, a, "b")
	client := front.Client()

	t.Run("echo", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, front.URL+"/echo?x=1&y=%C3%A9", nil)
		req.Header.Set("X-Test", "hello")
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var got echoed
		if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
			t.Fatal(err)
		}
		want := echoed{Method: "GET", Path: "/echo", Query: "x=1&y=%C3%A9", Test: "hello", Forwarded: "a",
			Remote: got.Remote, RequestID: "req-1"}
		if got != want || !strings.HasPrefix(got.Remote, "127.0.0.1:") {
			t.Fatalf("echo = %+v, want %+v from 127.0.0.1", got, want)
		}
		if ids := res.Header.Values(requestIDHeader); len(ids) != 1 || ids[0] != "req-1" {
			t.Fatalf("request ids %q", ids)
		}
	})

	t.Run("blob", func(t *testing.T) {
		body := randBytes(3, blobSize)
		req, _ := http.NewRequest(http.MethodPut, front.URL+"/blob", bytes.NewReader(body))
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if sum := sha256.Sum256(body); string(got) != fmt.Sprintf("%d %x", blobSize, sum) {
			t.Fatalf("blob: %d %s", res.StatusCode, got)
		}
	})

	t.Run("big", func(t *testing.T) {
		res, err := client.Get(front.URL + "/big")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		h := sha256.New()
		n, err := io.Copy(h, res.Body)
		if want := sha256.Sum256(randBytes(2, bigSize)); err != nil || n != bigSize || !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatalf("big: %d bytes, %v, sha256 %x, want %x", n, err, h.Sum(nil), want)
		}
	})

	t.Run("slow", func(t *testing.T) {
		res, err := client.Get(front.URL + "/slow")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		br := bufio.NewReader(res.Body)
		// /slow writes its second line only once the first is here.
		if line, err := br.ReadString('\n'); line != "first\n" || err != nil {
			t.Fatalf("first line %q, %v", line, err)
		}
		close(o.release)
		if line, err := br.ReadString('\n'); line != "second\n" || err != nil {
			t.Fatalf("second line %q, %v", line, err)
		}
	})

	t.Run("client leaves", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, front.URL+"/wait", nil)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		// The owner's handler runs; the client hangs up.
		cancel()
		res.Body.Close()
		select {
		case <-o.left:
		case <-time.After(10 * time.Second):
			t.Fatal("the owner's handler did not see its client leave")
		}
	})

	t.Run("owner deadline", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		req, _ := http.NewRequest(http.MethodPut, front.URL+"/deadline", pr)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("status %d, want 408", res.StatusCode)
		}
	})

	t.Run("websocket", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(front.URL, "http")+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		c.SetReadLimit(2 << 20)
		for i := range wsCount {
			typ, msg := wsMessage(i)
			if err := c.Write(ctx, typ, msg); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			gotTyp, got, err := c.Read(ctx)
			if err != nil || gotTyp != typ || !bytes.Equal(got, msg) {
				t.Fatalf("message %d: %v, %d bytes of %v, want %d of %v", i, err, len(got), gotTyp, len(msg), typ)
			}
		}
		_, _, err = c.Read(ctx)
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusNormalClosure || ce.Reason != "done" {
			t.Fatalf("close: %v", err)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 10)
		for i := range 10 {
			wg.Go(func() {
				body := randBytes(uint64(100+i), 1<<20+i)
				req, _ := http.NewRequest(http.MethodPut, front.URL+"/blob", bytes.NewReader(body))
				res, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				got, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if sum := sha256.Sum256(body); string(got) != fmt.Sprintf("%d %x", len(body), sum) {
					errs <- fmt.Errorf("request %d: %d %s", i, res.StatusCode, got)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("loop", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, front.URL+"/echo", nil)
		req.Header.Set(ForwardedHeader, "x")
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusLoopDetected {
			t.Fatalf("status %d, want 508", res.StatusCode)
		}
	})

	// Every tunnel ends with its request, not only at Close.
	eventually(t, 5*time.Second, noTunnels(a, b))
	a.Close()
	b.Close()
	if err := noTunnels(a, b)(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, noGoroutines)
}
