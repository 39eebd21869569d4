package relay

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// smallLimits make windows fill fast.
func smallLimits() limits {
	l := defaultLimits()
	l.window, l.chunk = 4, 1024
	return l
}

// link is the frames one tunnel end sent, optionally delivered to a peer.
type link struct {
	mu     sync.Mutex
	frames [][]byte
	peer   *tunnelConn // nil: frames are only recorded
}

func (l *link) send(b []byte) error {
	b = bytes.Clone(b) // the writer reuses its buffer, as NATS allows
	l.mu.Lock()
	l.frames = append(l.frames, b)
	peer := l.peer
	l.mu.Unlock()
	if peer != nil {
		peer.receive(b)
	}
	return nil
}

func (l *link) kinds() []kind {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []kind
	for _, f := range l.frames {
		out = append(out, kind(f[0]))
	}
	return out
}

// pair makes two tunnel ends wired to each other in memory.
func pair(lim limits) (a, b *tunnelConn, ab, ba *link) {
	a = newTunnelConn("t", lim, addr("a"), addr("b"))
	b = newTunnelConn("t", lim, addr("b"), addr("a"))
	ab, ba = &link{peer: b}, &link{peer: a}
	a.send, b.send = ab.send, ba.send
	return a, b, ab, ba
}

func randBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)}).Read(b)
	return b
}

func TestTunnelStream(t *testing.T) {
	a, b, _, _ := pair(smallLimits())
	want := randBytes(1, 300<<10+3)
	errc := make(chan error, 1)
	go func() {
		if _, err := a.Write(want); err != nil {
			errc <- err
			return
		}
		errc <- a.CloseWrite()
	}()
	got, err := io.ReadAll(b)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, %v; want %d bytes", len(got), err, len(want))
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// The other direction still works after a half-close.
	if _, err := b.Write([]byte("answer")); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(a)
	if err != nil || string(got) != "answer" {
		t.Fatalf("read %q, %v", got, err)
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, errWriteClosed) {
		t.Fatalf("write after CloseWrite: %v", err)
	}
	if !a.ended || !b.ended {
		t.Fatalf("ended: %v %v, want both", a.ended, b.ended)
	}
}

func TestTunnelWindow(t *testing.T) {
	lim := smallLimits()
	a, b, ab, _ := pair(lim)
	// Nobody reads b: the writer stops at the window, and a write deadline
	// ends the wait with what was written.
	_ = a.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := a.Write(make([]byte, 10*lim.chunk))
	if !errors.Is(err, os.ErrDeadlineExceeded) || n != lim.window*lim.chunk {
		t.Fatalf("write = %d, %v; want %d, deadline", n, err, lim.window*lim.chunk)
	}
	if len(ab.kinds()) != lim.window {
		t.Fatalf("%d frames sent, want %d", len(ab.kinds()), lim.window)
	}
	// Reading frees the window.
	_ = a.SetWriteDeadline(time.Time{})
	done := make(chan error, 1)
	go func() { _, err := a.Write(make([]byte, lim.chunk)); done <- err }()
	if _, err := io.ReadFull(b, make([]byte, lim.chunk)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestTunnelReadDeadline(t *testing.T) {
	a, _, _, _ := pair(smallLimits())
	done := make(chan error, 1)
	go func() { _, err := a.Read(make([]byte, 1)); done <- err }()
	// What net/http's abortPendingRead does.
	_ = a.SetReadDeadline(time.Unix(1, 0))
	if err := <-done; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read = %v, want deadline", err)
	}
	var ne net.Error
	if err := (error)(os.ErrDeadlineExceeded); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatal("deadline error is not a net timeout")
	}
	_ = a.SetReadDeadline(time.Time{})
	go func() { _, err := a.Read(make([]byte, 1)); done <- err }()
	_ = a.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close = %v", err)
	}
}

func TestTunnelStopAndClose(t *testing.T) {
	a, b, _, _ := pair(smallLimits())
	if _, err := b.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	// b closes without reading: a's writes fail at once, a still reads
	// what b sent.
	_ = b.Close()
	if _, err := a.Write([]byte("more")); !errors.Is(err, errPeerStopped) {
		t.Fatalf("write to a stopped peer = %v", err)
	}
	got, err := io.ReadAll(a)
	if err != nil || string(got) != "bye" {
		t.Fatalf("read %q, %v", got, err)
	}
}

func TestTunnelHostile(t *testing.T) {
	data := func(seq uint64) []byte { return appendFrame(nil, kindData, seq, []byte("x")) }
	for _, tc := range []struct {
		name   string
		before [][]byte // accepted
		frame  []byte   // refused
	}{
		{name: "short", frame: []byte{'d', 0, 0}},
		{name: "unknown kind", frame: appendFrame(nil, 'z', 1, nil)},
		{name: "gap", before: [][]byte{data(1)}, frame: data(3)},
		{name: "repeat", before: [][]byte{data(1), data(2)}, frame: data(2)},
		{name: "first chunk is not 1", frame: data(2)},
		{name: "beyond the window", before: [][]byte{data(1), data(2), data(3), data(4)}, frame: data(5)},
		{name: "data after fin", before: [][]byte{data(1), appendFrame(nil, kindFin, 1, nil)}, frame: data(2)},
		{name: "fin before the last chunk", before: [][]byte{data(1)}, frame: appendFrame(nil, kindFin, 2, nil)},
		{name: "fin hiding a lost chunk", before: [][]byte{data(1)}, frame: appendFrame(nil, kindFin, 0, nil)},
		{name: "ack of unsent data", frame: appendFrame(nil, kindAck, 1, nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTunnelConn("t", smallLimits(), addr("a"), addr("b"))
			out := &link{}
			c.send = out.send
			for _, f := range tc.before {
				c.receive(f)
			}
			if c.err != nil {
				t.Fatalf("refused a good frame: %v", c.err)
			}
			c.receive(tc.frame)
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, errProtocol) {
				t.Fatalf("read = %v, want a protocol error", err)
			}
			if k := out.kinds(); len(k) == 0 || k[len(k)-1] != kindReset {
				t.Fatalf("sent %q, want a reset last", k)
			}
			if !c.ended {
				t.Fatal("not ended")
			}
		})
	}
}

func TestTunnelReset(t *testing.T) {
	a, b, _, _ := pair(smallLimits())
	a.abort(errRelayClosed, true)
	if _, err := b.Read(make([]byte, 1)); !errors.Is(err, errPeerReset) {
		t.Fatalf("read = %v, want reset", err)
	}
	if _, err := b.Write([]byte("x")); !errors.Is(err, errPeerReset) {
		t.Fatalf("write = %v, want reset", err)
	}
}

func TestTunnelHeartbeat(t *testing.T) {
	lim := smallLimits()
	a, b, ab, _ := pair(lim)
	now := time.Now()
	// Idle both ways, the peer alive: a heartbeat, no abort.
	a.tick(now)
	if k := ab.kinds(); len(k) != 1 || k[0] != kindAck || b.err != nil {
		t.Fatalf("sent %q, peer err %v", k, b.err)
	}
	// The peer owes its end and has been silent too long.
	a.tick(now.Add(lim.peerTimeout + time.Second))
	if _, err := a.Read(make([]byte, 1)); !errors.Is(err, errPeerSilent) {
		t.Fatalf("read = %v, want silent", err)
	}
	if _, err := b.Read(make([]byte, 1)); !errors.Is(err, errPeerReset) {
		t.Fatalf("peer read = %v, want reset", err)
	}

	// A tunnel over in both directions owes nothing: no abort, however
	// long the silence.
	c, d, _, _ := pair(lim)
	_ = c.CloseWrite()
	_ = d.CloseWrite()
	c.tick(now.Add(time.Hour))
	if c.err != nil {
		t.Fatal(c.err)
	}
}
