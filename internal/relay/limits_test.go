package relay

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
)

func TestForwardUnreachable(t *testing.T) {
	srv := startNATS(t)
	a, nc := startRelay(t, srv, "a", nil, time.Minute, defaultLimits())
	// "mute" takes opens and never answers.
	if _, err := nc.Subscribe(subjectPrefix+"mute.open", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, owner string
		status      int
		within      time.Duration
	}{
		{name: "no such node", owner: "nosuch", status: http.StatusBadGateway, within: 5 * time.Second},
		{name: "silent node", owner: "mute", status: http.StatusBadGateway, within: 6 * time.Second},
		{name: "invalid name", owner: "a.b", status: http.StatusBadGateway, within: time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			front := startFront(t, a, tc.owner)
			start := time.Now()
			res, err := front.Client().Get(front.URL + "/x")
			if err != nil {
				t.Fatal(err)
			}
			var p problem
			_ = json.NewDecoder(res.Body).Decode(&p)
			res.Body.Close()
			if res.StatusCode != tc.status || p.Status != tc.status || p.RequestID != "req-1" ||
				res.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("answer %d %+v", res.StatusCode, p)
			}
			if d := time.Since(start); d > tc.within {
				t.Fatalf("answered after %s", d)
			}
		})
	}
	eventually(t, 5*time.Second, noTunnels(a))
}

func TestTunnelLimit(t *testing.T) {
	srv := startNATS(t)
	lim := defaultLimits()
	lim.tunnels = 4
	release := make(chan struct{})
	a, _ := startRelay(t, srv, "a", nil, time.Minute, defaultLimits())
	b, _ := startRelay(t, srv, "b", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}), time.Minute, lim)
	front := startFront(t, a, "b")
	client := front.Client()

	var wg sync.WaitGroup
	statuses := make(chan int, lim.tunnels)
	for range lim.tunnels {
		wg.Go(func() {
			res, err := client.Get(front.URL + "/block")
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			statuses <- res.StatusCode
		})
	}
	eventually(t, 5*time.Second, func() error {
		if n := len(b.open()); n != lim.tunnels {
			return fmt.Errorf("%d tunnels open", n)
		}
		return nil
	})
	res, err := client.Get(front.URL + "/block")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Fatalf("beyond the limit: %d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	close(release)
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusOK {
			t.Errorf("status %d", s)
		}
	}
	eventually(t, 5*time.Second, noTunnels(a, b))
}

// dialWS opens /ws through front and checks one echo.
func dialWS(t *testing.T, ctx context.Context, front *httptest.Server) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(front.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	if err := c.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, b, err := c.Read(ctx); err != nil || string(b) != "ping" {
		t.Fatalf("echo %q, %v", b, err)
	}
	return c
}

func TestCloseEndsTunnels(t *testing.T) {
	srv := startNATS(t)
	a, _ := startRelay(t, srv, "a", nil, time.Minute, defaultLimits())
	b, _ := startRelay(t, srv, "b", (&owner{}).routes(), time.Minute, defaultLimits())
	front := startFront(t, a, "b")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := dialWS(t, ctx, front)
	if n := len(b.open()); n != 1 {
		t.Fatalf("%d tunnels open on b", n)
	}
	// b closes: a hears the reset, and the client loses its connection.
	b.Close()
	if _, _, err := c.Read(ctx); err == nil {
		t.Fatal("read after the owner closed")
	}
	eventually(t, 5*time.Second, noTunnels(a, b))
	res, err := front.Client().Get(front.URL + "/echo")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway {
		t.Fatalf("forward to a closed node: %d", res.StatusCode)
	}
	a.Close()
	eventually(t, 5*time.Second, noGoroutines)
}

func TestSilentPeer(t *testing.T) {
	srv := startNATS(t)
	lim := defaultLimits()
	lim.keepalive, lim.peerTimeout = 50*time.Millisecond, 300*time.Millisecond
	a, _ := startRelay(t, srv, "a", nil, time.Minute, lim)
	b, bnc := startRelay(t, srv, "b", (&owner{}).routes(), time.Minute, lim)
	front := startFront(t, a, "b")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := dialWS(t, ctx, front)
	// Idle, with heartbeats: the tunnel stays.
	time.Sleep(3 * lim.peerTimeout)
	if n := len(a.open()); n != 1 {
		t.Fatalf("%d tunnels open on a after an idle spell", n)
	}
	// b's node dies without a word: a gives up after peerTimeout.
	bnc.Close()
	start := time.Now()
	if _, _, err := c.Read(ctx); err == nil {
		t.Fatal("read after the owner died")
	}
	if d := time.Since(start); d > 10*lim.peerTimeout {
		t.Fatalf("noticed after %s", d)
	}
	eventually(t, 5*time.Second, noTunnels(a, b))
}

func TestStalledClient(t *testing.T) {
	srv := startNATS(t)
	lim := defaultLimits()
	lim.writeStall = 300 * time.Millisecond
	a, _ := startRelay(t, srv, "a", nil, time.Minute, lim)
	b, _ := startRelay(t, srv, "b", (&owner{}).routes(), time.Minute, defaultLimits())
	front := startFront(t, a, "b")
	// A client asks for 16 MiB and reads none of it: once the socket
	// buffers are full, the front gives up on it, and the tunnel ends.
	c, err := net.Dial("tcp", front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: front\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, func() error {
		if len(b.open()) == 0 {
			return errors.New("no tunnel yet")
		}
		return nil
	})
	eventually(t, 10*time.Second, noTunnels(a, b))
}

func TestOpenHostile(t *testing.T) {
	srv := startNATS(t)
	b, _ := startRelay(t, srv, "b", nil, time.Minute, defaultLimits())
	nc := connect(t, srv, "x")
	id := hex.EncodeToString(randBytes(5, 16))
	for _, tc := range []struct {
		name, body, reply string
	}{
		{name: "not json", body: "hello", reply: replyBad},
		{name: "empty", body: "", reply: replyBad},
		{name: "short id", body: `{"id":"abc","from":"a"}`, reply: replyBad},
		{name: "id not hex", body: `{"id":"` + strings.Repeat("z", 32) + `","from":"a"}`, reply: replyBad},
		{name: "subject in from", body: `{"id":"` + id + `","from":"a.>"}`, reply: replyBad},
		{name: "too long", body: `{"id":"` + id + `","from":"a","remote":"` + strings.Repeat("1", maxOpenBytes) + `"}`, reply: replyBad},
		{name: "good", body: `{"id":"` + id + `","from":"a","remote":"<script>"}`, reply: replyOK},
		{name: "same id again", body: `{"id":"` + id + `","from":"a"}`, reply: replyBad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := nc.Request(subjectPrefix+"b.open", []byte(tc.body), 5*time.Second)
			if err != nil || string(m.Data) != tc.reply {
				t.Fatalf("reply %v, %v; want %q", m, err, tc.reply)
			}
		})
	}
	if tunnels := b.open(); len(tunnels) != 1 || tunnels[0].RemoteAddr().String() != "a" {
		t.Fatalf("tunnels %v, want one from a (an odd remote address is replaced)", tunnels)
	}
}
