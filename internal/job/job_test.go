package job

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/runbox-dev/runbox/internal/job/sign"
	"github.com/runbox-dev/runbox/internal/job/webhook"
)

// natsConn starts an embedded NATS server (its store in a temporary
// directory) for the test and returns a way to open connections to it.
func natsConn(t *testing.T) func() *nats.Conn {
	t.Helper()
	emb, err := StartEmbedded(t.TempDir(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	return func() *nats.Conn {
		nc, err := emb.Connect("test")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
}

func testConfig(node string) Config {
	c := DefaultConfig
	c.Node, c.Workers, c.AckWait = node, 1, time.Second
	return c
}

// open starts an engine with work; it is closed when the test ends.
func open(t *testing.T, nc *nats.Conn, cfg Config, work Work) *Engine {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	secret, _ := webhook.GenerateSecret()
	e, err := Open(context.Background(), nc, cfg, key, webhook.NewSender(secret, &webhook.Policy{}, time.Second), work, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// openSilent starts an engine that never tells NATS it is still working
// on a job.
func openSilent(t *testing.T, nc *nats.Conn, cfg Config, work Work) *Engine {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	secret, _ := webhook.GenerateSecret()
	e, err := openEngine(context.Background(), nc, cfg, key, webhook.NewSender(secret, &webhook.Policy{}, time.Second), work,
		slog.New(slog.DiscardHandler), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// echo is a Work that answers a run-like result with the request as stdout.
func echo(ctx context.Context, req []byte, out func(string, []byte)) ([]byte, error) {
	out("stdout", req)
	b, _ := json.Marshal(map[string]any{"run": map[string]any{"stdout": string(req), "exit_code": 0}, "files": []any{}})
	return b, nil
}

// blocking is a Work that waits for release (or its ctx) and counts its
// starts.
type blocking struct {
	started atomic.Int64
	release chan struct{}
	// ignoreCancel makes it run on after its ctx ends (a node that is
	// wedged, or cut off).
	ignoreCancel bool
}

func (b *blocking) work(ctx context.Context, req []byte, out func(string, []byte)) ([]byte, error) {
	b.started.Add(1)
	if b.ignoreCancel {
		<-b.release
	} else {
		select {
		case <-b.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return echo(ctx, req, out)
}

func wait(t *testing.T, e *Engine, id string, want string) Record {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rec, err := e.Get(context.Background(), id, "")
		if err == nil && rec.Status == want {
			return rec
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: %+v (%v), want %s", id, rec, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func submit(t *testing.T, e *Engine, req string) string {
	t.Helper()
	rec, _, err := e.Submit(context.Background(), []byte(req), nil, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return rec.ID
}

func TestDoneAndSigned(t *testing.T) {
	nc := natsConn(t)()
	e := open(t, nc, testConfig("a"), echo)
	id := submit(t, e, "hello")
	rec := wait(t, e, id, Done)
	res, err := e.Result(context.Background(), rec)
	if err != nil || !strings.Contains(string(res), "hello") {
		t.Fatalf("result %s, %v", res, err)
	}
	keys, _ := e.Keys(context.Background())
	if err := sign.VerifyJob(View(rec, res), keys, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := sign.VerifyJob(View(rec, res), keys, []byte("hellO")); err == nil {
		t.Fatal("another request verified")
	}
	// Owners see only their own jobs.
	if _, err := e.Get(context.Background(), id, "someone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another owner got the job: %v", err)
	}
}

func TestFailed(t *testing.T) {
	nc := natsConn(t)()
	e := open(t, nc, testConfig("a"), func(ctx context.Context, req []byte, out func(string, []byte)) ([]byte, error) {
		return nil, errors.New("no box today")
	})
	rec := wait(t, e, submit(t, e, "x"), Failed)
	if rec.Error != "no box today" || rec.Signature != nil || rec.Result != "" || rec.FinishedAt.IsZero() {
		t.Fatalf("failed job: %+v", rec)
	}
}

// A node that stops puts its running job back in the queue, and it runs
// (once) when a node takes it again.
func TestCloseRequeues(t *testing.T) {
	conn := natsConn(t)
	b := &blocking{release: make(chan struct{})}
	e := open(t, conn(), testConfig("a"), b.work)
	id := submit(t, e, "again")
	wait(t, e, id, Running)
	e.Close()
	rec, err := e.Get(context.Background(), id, "")
	if err != nil || rec.Status != Queued || rec.Runs != 0 {
		t.Fatalf("after close: %+v %v", rec, err)
	}
	e2 := open(t, conn(), testConfig("a"), echo)
	if rec := wait(t, e2, id, Done); rec.Runs != 1 {
		t.Fatalf("runs %d", rec.Runs)
	}
}

// A node that goes silent loses its job to another after the ack deadline;
// when the silent one finishes anyway, its result is dropped: one result,
// one signature.
func TestSilentNodeLosesTheJob(t *testing.T) {
	conn := natsConn(t)
	wedged := &blocking{release: make(chan struct{}), ignoreCancel: true}
	a := openSilent(t, conn(), testConfig("a"), wedged.work)
	// A request (and so a result) too large to be kept in the record:
	// both go to the object store, and the late node's result must not.
	id := submit(t, a, `"`+strings.Repeat("x", maxInline)+`"`)
	wait(t, a, id, Running)
	b := open(t, conn(), testConfig("b"), echo)
	rec := wait(t, b, id, Done)
	if rec.Node != "b" || rec.Runs != 2 {
		t.Fatalf("record %+v", rec)
	}
	close(wedged.release) // a finishes late
	deadline := time.Now().Add(10 * time.Second)
	for a.busy() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	after, _ := b.Get(context.Background(), id, "")
	if after.Node != "b" || after.Signature.Value != rec.Signature.Value || !after.FinishedAt.Equal(rec.FinishedAt) {
		t.Fatalf("the late node changed the record: %+v", after)
	}
	names := objects(t, a)
	if fmt.Sprint(names) != fmt.Sprint([]string{id + ".request", id + ".result.2"}) {
		t.Fatalf("objects %v", names)
	}
}

// A queue message delivered before its job's record can be read (as
// from a replica that lags) is not dropped: the job runs once the record
// is there.
func TestRecordAfterQueueMessage(t *testing.T) {
	nc := natsConn(t)()
	e := open(t, nc, testConfig("a"), echo)
	ctx := context.Background()
	id := newID()
	if _, err := e.js.Publish(ctx, queueSubject, []byte(id), jetstream.WithMsgID(id)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := e.queue.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Delivered.Consumer >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the queue message was never delivered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	req := []byte(`"late"`)
	rec := Record{ID: id, Status: Queued, CreatedAt: time.Now().UTC(), Request: req, RequestSHA256: digest(req)}
	if _, err := e.jobs.Create(ctx, id, encode(rec)); err != nil {
		t.Fatal(err)
	}
	if got := wait(t, e, id, Done); got.Runs != 1 {
		t.Fatalf("runs %d, want 1", got.Runs)
	}
}

// A job whose nodes keep dying is failed after max_runs takes.
func TestMaxRuns(t *testing.T) {
	conn := natsConn(t)
	wedged := &blocking{release: make(chan struct{}), ignoreCancel: true}
	defer close(wedged.release)
	cfg := testConfig("a")
	cfg.MaxRuns = 1
	a := openSilent(t, conn(), cfg, wedged.work)
	id := submit(t, a, "doomed")
	wait(t, a, id, Running)
	cfg.Node = "b"
	b := open(t, conn(), cfg, echo)
	rec := wait(t, b, id, Failed)
	if !strings.Contains(rec.Error, "taken 1 times") {
		t.Fatalf("error %q", rec.Error)
	}
}

func TestQueueBound(t *testing.T) {
	nc := natsConn(t)()
	b := &blocking{release: make(chan struct{})}
	defer close(b.release)
	cfg := testConfig("a")
	cfg.MaxQueued = 2
	e := open(t, nc, cfg, b.work)
	submit(t, e, "1")
	submit(t, e, "2")
	if _, _, err := e.Submit(context.Background(), []byte("3"), nil, "", ""); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third submit: %v", err)
	}
	// Nothing of the refused job is kept.
	page, _, _ := e.List(context.Background(), "", "", 10, "")
	if len(page) != 2 {
		t.Fatalf("%d jobs listed", len(page))
	}
}

func TestConfigCheck(t *testing.T) {
	for _, f := range []func(*Config){
		func(c *Config) { c.Node = "" },
		func(c *Config) { c.Node = "a.b" },
		func(c *Config) { c.Retention = time.Second },
		func(c *Config) { c.Workers = 0 },
		func(c *Config) { c.AckWait = 0 },
		func(c *Config) { c.Replicas = 7 },
		func(c *Config) { c.WebhookRetries = []time.Duration{time.Second, 0} },
	} {
		c := testConfig("a")
		f(&c)
		if c.Check() == nil {
			t.Errorf("accepted %+v", c)
		}
	}
	if err := testConfig("node-1_x").Check(); err != nil {
		t.Fatal(err)
	}
}

func objects(t *testing.T, e *Engine) []string {
	t.Helper()
	infos, err := e.data.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range infos {
		names = append(names, i.Name)
	}
	return names
}
