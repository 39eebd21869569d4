package api

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/job"
	"github.com/runbox-dev/runbox/internal/job/sign"
	"github.com/runbox-dev/runbox/internal/job/webhook"
	"github.com/runbox-dev/runbox/internal/runner"
)

// jobServer serves the API with jobs on an embedded NATS server (its store
// in a temporary directory), callbacks allowed to reach allow.
func jobServer(t *testing.T, jc job.Config, allow ...string) (string, webhook.Secret) {
	t.Helper()
	if testEnv == nil {
		t.Skip(skipReason)
	}
	url, secret, _ := jobServerOn(t, testConfig(), runner.New(testEnv.Jail, testReg, runner.NewCache(testConfig().CacheBytes, time.Hour)), jc, allow...)
	return url, secret
}

// jobServerOn is jobServer with the API's settings and runner given.
func jobServerOn(t *testing.T, cfg Config, r Runner, jc job.Config, allow ...string) (string, webhook.Secret, *Server) {
	t.Helper()
	prefixes, err := webhook.ParseAllow(allow)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Jobs, cfg.CallbackPolicy = true, &webhook.Policy{Allow: prefixes}
	url, srv := serveWith(t, cfg, r, testReg)
	emb, err := job.StartEmbedded(t.TempDir(), "test")
	if err != nil {
		t.Fatal(err)
	}
	nc, err := emb.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	secret, _ := webhook.GenerateSecret()
	if jc.Node == "" {
		jc.Node = "n1"
	}
	e, err := job.Open(context.Background(), nc, jc, key, webhook.NewSender(secret, cfg.CallbackPolicy, 2*time.Second), srv.RunJob, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv.UseJobs(e)
	t.Cleanup(func() {
		e.Close()
		nc.Close()
		emb.Close()
	})
	return url, secret, srv
}

func testJobConfig() job.Config {
	c := job.DefaultConfig
	c.Workers = 2
	c.AckWait = 5 * time.Second
	c.WebhookRetries = []time.Duration{100 * time.Millisecond, 100 * time.Millisecond}
	return c
}

// submit posts a job and returns its id.
func submit(tb testing.TB, url string, body map[string]any) string {
	tb.Helper()
	r := call(tb, "POST", url+"/v1/jobs", body)
	expect(tb, r, http.StatusAccepted)
	id, _ := r.body["id"].(string)
	if !job.ValidID(id) || r.body["status"] != "queued" || r.body["url"] != "/v1/jobs/"+id || r.header.Get("Location") != "/v1/jobs/"+id {
		tb.Fatalf("submit answered %s (Location %q)", r.raw, r.header.Get("Location"))
	}
	return id
}

// waitJob polls a job until its status is one of want.
func waitJob(tb testing.TB, url, id string, want ...string) reply {
	tb.Helper()
	var r reply
	eventually(tb, time.Minute, func() error {
		r = call(tb, "GET", url+"/v1/jobs/"+id, nil)
		expect(tb, r, http.StatusOK)
		for _, w := range want {
			if r.body["status"] == w {
				return nil
			}
		}
		return fmt.Errorf("status %v, want %v", r.body["status"], want)
	})
	return r
}

func signingKeys(tb testing.TB, url string) []sign.PublicKey {
	tb.Helper()
	r := call(tb, "GET", url+"/v1/keys", nil)
	expect(tb, r, http.StatusOK)
	var kl KeyList
	if err := json.Unmarshal(r.raw, &kl); err != nil || len(kl.Keys) == 0 {
		tb.Fatalf("keys: %s (%v)", r.raw, err)
	}
	return kl.Keys
}

func TestJobLifecycle(t *testing.T) {
	url, _ := jobServer(t, testJobConfig())
	id := submit(t, url, map[string]any{"command": []string{"sh", "-c", "read x; echo hello $x; echo err >&2; printf 'a\\000b' > out.bin"},
		"stdin": "world", "outputs": []string{"out.bin"}})
	// A long poll answers when the job ends.
	r := call(t, "GET", url+"/v1/jobs/"+id+"?wait=20", nil)
	expect(t, r, http.StatusOK)
	if r.body["status"] != "done" {
		t.Fatalf("after wait: %s", r.raw)
	}
	if got := field(r.body, "result", "run", "stdout"); got != "hello world\n" {
		t.Fatalf("stdout %q: %s", got, r.raw)
	}
	if got := field(r.body, "result", "run", "stderr"); got != "err\n" {
		t.Fatalf("stderr %q", got)
	}
	for _, k := range []string{"created_at", "started_at", "finished_at", "node", "request_sha256", "signature"} {
		if r.body[k] == nil || r.body[k] == "" {
			t.Fatalf("no %s in %s", k, r.raw)
		}
	}
	if r.body["node"] != "n1" || r.body["runs"] != float64(1) {
		t.Fatalf("node or runs: %s", r.raw)
	}
	// The signature holds, and a changed byte of the result breaks it.
	if err := sign.VerifyJob(r.raw, signingKeys(t, url), nil); err != nil {
		t.Fatalf("verify: %v", err)
	}
	bad := strings.Replace(string(r.raw), "hello world", "hello wOrld", 1)
	if err := sign.VerifyJob([]byte(bad), signingKeys(t, url), nil); err == nil {
		t.Fatal("a changed stdout verified")
	}
	// The returned file, raw.
	f := call(t, "GET", url+"/v1/jobs/"+id+"/files/out.bin", nil)
	expect(t, f, http.StatusOK)
	if string(f.raw) != "a\x00b" || f.header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("file %q (%s)", f.raw, f.header.Get("Content-Type"))
	}
	expectProblem(t, call(t, "GET", url+"/v1/jobs/"+id+"/files/nope", nil), http.StatusNotFound, "path.name")
	for _, p := range []string{"../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd"} {
		if r := call(t, "GET", url+"/v1/jobs/"+id+"/files/"+p, nil); r.code != http.StatusNotFound || strings.Contains(string(r.raw), "root:") {
			t.Fatalf("files/%s: %d %.200s", p, r.code, r.raw)
		}
	}
	// Cancelling a finished job is a conflict.
	expectProblem(t, call(t, "DELETE", url+"/v1/jobs/"+id, nil), http.StatusConflict, "path.id")
}

func TestJobList(t *testing.T) {
	url, _ := jobServer(t, testJobConfig())
	var ids []string
	for i := range 3 {
		ids = append(ids, submit(t, url, map[string]any{"command": []string{"echo", fmt.Sprint(i)}}))
		time.Sleep(2 * time.Millisecond) // ids sort by millisecond
	}
	for _, id := range ids {
		waitJob(t, url, id, "done")
	}
	r := call(t, "GET", url+"/v1/jobs?limit=2", nil)
	expect(t, r, http.StatusOK)
	page := r.body["jobs"].([]any)
	if len(page) != 2 || field(r.body, "jobs", "0", "id") != ids[2] || field(r.body, "jobs", "1", "id") != ids[1] || r.body["next_cursor"] != ids[1] {
		t.Fatalf("first page: %s", r.raw)
	}
	if field(r.body, "jobs", "0", "result") != nil {
		t.Fatalf("a list carries results: %s", r.raw)
	}
	r = call(t, "GET", url+"/v1/jobs?limit=2&cursor="+ids[1], nil)
	if page := r.body["jobs"].([]any); len(page) != 1 || field(r.body, "jobs", "0", "id") != ids[0] || r.body["next_cursor"] != nil {
		t.Fatalf("second page: %s", r.raw)
	}
	r = call(t, "GET", url+"/v1/jobs?status=running", nil)
	if page := r.body["jobs"].([]any); len(page) != 0 {
		t.Fatalf("running: %s", r.raw)
	}
	expectProblem(t, call(t, "GET", url+"/v1/jobs?status=lost", nil), http.StatusUnprocessableEntity, "query.status")
	expectProblem(t, call(t, "GET", url+"/v1/jobs?limit=1000", nil), http.StatusUnprocessableEntity, "query.limit")
	expectProblem(t, call(t, "GET", url+"/v1/jobs?cursor=xyz", nil), http.StatusUnprocessableEntity, "query.cursor")
}

func TestJobBadInput(t *testing.T) {
	url, _ := jobServer(t, testJobConfig())
	for _, c := range []struct {
		body     any
		status   int
		location string
	}{
		{map[string]any{}, 422, "body.language"},
		{map[string]any{"language": "cobol-1960", "files": []any{map[string]any{"name": "a", "content": "x"}}}, 422, "body.language"},
		{map[string]any{"command": []string{"true"}, "callback": map[string]any{"url": "ftp://example.com/"}}, 422, "body.callback.url"},
		{map[string]any{"command": []string{"true"}, "callback": map[string]any{"url": "http://127.0.0.1:9/"}}, 422, "body.callback.url"},
		{map[string]any{"command": []string{"true"}, "callback": map[string]any{"url": "http://10.1.2.3/"}}, 422, "body.callback.url"},
		{map[string]any{"command": []string{"true"}, "callback": map[string]any{"url": "http://169.254.169.254/latest"}}, 422, "body.callback.url"},
		{map[string]any{"command": []string{"true"}, "callback": map[string]any{"url": "https://example.com/", "headers": map[string]string{"webhook-id": "x"}}}, 422, "body.callback.headers"},
		{map[string]any{"command": []string{"true"}, "callback": map[string]any{"url": "https://example.com/", "format": "nope"}}, 422, "body.callback.format"},
		{map[string]any{"command": []string{"true"}, "limits": map[string]any{"wall_time_ms": 3600000}}, 422, "body.limits.wall_time_ms"},
		{[]byte("{not json"), 400, ""},
	} {
		r := call(t, "POST", url+"/v1/jobs", c.body)
		if c.status == 400 {
			if r.code != 400 && r.code != 415 {
				t.Fatalf("%v: %d %s", c.body, r.code, r.raw)
			}
			continue
		}
		expectProblem(t, r, c.status, c.location)
	}
	expectProblem(t, call(t, "GET", url+"/v1/jobs/0123", nil), http.StatusNotFound, "path.id")
	expectProblem(t, call(t, "GET", url+"/v1/jobs/"+strings.Repeat("a", 44), nil), http.StatusNotFound, "path.id")
	expectProblem(t, call(t, "DELETE", url+"/v1/jobs/"+strings.Repeat("a", 44), nil), http.StatusNotFound, "path.id")
	expectProblem(t, call(t, "GET", url+"/v1/jobs/"+strings.Repeat("a", 44)+"?wait=61", nil), http.StatusUnprocessableEntity, "query.wait")
	r := call(t, "GET", url+"/v1/jobs/"+strings.Repeat("a", 44)+"/events", nil)
	expectProblem(t, r, http.StatusNotFound, "path.id")
	// The server is still up.
	waitJob(t, url, submit(t, url, map[string]any{"command": []string{"true"}}), "done")
}

func TestJobIdempotency(t *testing.T) {
	url, _ := jobServer(t, testJobConfig())
	body := map[string]any{"command": []string{"echo", "once"}}
	post := func(key string, body any) reply {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", url+"/v1/jobs", strings.NewReader(string(b)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		r := reply{code: resp.StatusCode, raw: raw, header: resp.Header}
		_ = json.Unmarshal(raw, &r.body)
		return r
	}
	first := post("k-1", body)
	expect(t, first, http.StatusAccepted)
	again := post("k-1", body)
	expect(t, again, http.StatusOK)
	if again.body["id"] != first.body["id"] || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay %s, first %s", again.raw, first.raw)
	}
	other := post("k-2", body)
	if other.body["id"] == first.body["id"] {
		t.Fatal("another key gave the same job")
	}
	expectProblem(t, post("k-1", map[string]any{"command": []string{"echo", "twice"}}), http.StatusUnprocessableEntity, "header.Idempotency-Key")
}

func TestJobCancel(t *testing.T) {
	jc := testJobConfig()
	jc.Workers = 1
	url, _ := jobServer(t, jc)
	mounts := runboxMounts(t)
	running := submit(t, url, map[string]any{"command": []string{"sleep", "60"}})
	waitJob(t, url, running, "running")
	queued := submit(t, url, map[string]any{"command": []string{"touch", "/box/ran"}})
	// The one worker is busy: the second waits.
	r := call(t, "DELETE", url+"/v1/jobs/"+queued, nil)
	expect(t, r, http.StatusOK)
	if r.body["status"] != "cancelled" {
		t.Fatalf("cancel queued: %s", r.raw)
	}
	start := time.Now()
	r = call(t, "DELETE", url+"/v1/jobs/"+running, nil)
	expect(t, r, http.StatusOK)
	r = waitJob(t, url, running, "cancelled")
	if r.body["result"] != nil || r.body["signature"] != nil {
		t.Fatalf("a cancelled job has a result: %s", r.raw)
	}
	// The box is gone well before its sleep would have ended.
	eventually(t, 30*time.Second, func() error {
		if n := runboxMounts(t); n > mounts {
			return fmt.Errorf("%d runbox mounts, %d before", n, mounts)
		}
		return nil
	})
	if time.Since(start) > 50*time.Second {
		t.Fatal("the cancelled box ran to its end")
	}
	// The queued one never ran, and a next job runs on the freed worker.
	waitJob(t, url, submit(t, url, map[string]any{"command": []string{"true"}}), "done")
	if r := call(t, "GET", url+"/v1/jobs/"+queued, nil); r.body["status"] != "cancelled" || r.body["started_at"] != nil {
		t.Fatalf("the cancelled queued job: %s", r.raw)
	}
}

// sseEvents reads a job's events until the stream ends.
func sseEvents(t *testing.T, url, id string) []job.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/v1/jobs/"+id+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var out []job.Event
	sc := bufio.NewScanner(resp.Body)
	kind := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			kind = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			var ev job.Event
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev); err != nil || ev.Type != kind {
				t.Fatalf("event %q (%s): %v", line, kind, err)
			}
			out = append(out, ev)
		}
	}
	return out
}

func TestJobEvents(t *testing.T) {
	url, _ := jobServer(t, testJobConfig())
	id := submit(t, url, map[string]any{"command": []string{"sh", "-c", "echo one; sleep 0.5; echo two >&2; printf '\\377'"}})
	evs := sseEvents(t, url, id)
	var statuses []string
	var stdout, stderr string
	var raw []byte
	for _, ev := range evs {
		switch {
		case ev.Type == "status":
			statuses = append(statuses, ev.Status)
		case ev.Stream == "stdout":
			stdout += ev.Data
			raw = append(raw, ev.DataBase64...)
		case ev.Stream == "stderr":
			stderr += ev.Data
		}
	}
	if strings.Join(statuses, ",") != "queued,running,done" || stdout != "one\n" || stderr != "two\n" || string(raw) != "\xff" {
		t.Fatalf("events: statuses %v stdout %q stderr %q raw %q", statuses, stdout, stderr, raw)
	}
	// A reader that comes after the end gets the end.
	evs = sseEvents(t, url, id)
	if len(evs) != 1 || evs[0].Status != "done" {
		t.Fatalf("late events: %+v", evs)
	}
}

// receiver is a webhook endpoint on 127.0.0.1 that fails its first fail
// requests with 500.
type receiver struct {
	mu     sync.Mutex
	hits   atomic.Int64
	fail   int64
	bodies [][]byte
	heads  []http.Header
	srv    *httptest.Server
}

func newReceiver(t *testing.T, fail int64) *receiver {
	rc := &receiver{fail: fail}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.bodies, rc.heads = append(rc.bodies, b), append(rc.heads, r.Header.Clone())
		rc.mu.Unlock()
		if rc.hits.Add(1) <= rc.fail {
			w.WriteHeader(500)
			return
		}
		w.WriteHeader(204)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func TestJobWebhook(t *testing.T) {
	url, secret := jobServer(t, testJobConfig(), "127.0.0.0/8")
	rc := newReceiver(t, 1)
	id := submit(t, url, map[string]any{"command": []string{"echo", "hooked"},
		"callback": map[string]any{"url": rc.srv.URL + "/hook", "headers": map[string]string{"Authorization": "Bearer r"}}})
	var r reply
	eventually(t, time.Minute, func() error {
		r = call(t, "GET", url+"/v1/jobs/"+id, nil)
		if field(r.body, "webhook", "delivered") != true {
			return fmt.Errorf("not delivered: %s", r.raw)
		}
		return nil
	})
	if n := len(r.body["webhook"].(map[string]any)["attempts"].([]any)); n != 2 || rc.hits.Load() != 2 {
		t.Fatalf("%d attempts recorded, %d received: %s", n, rc.hits.Load(), r.raw)
	}
	if field(r.body, "webhook", "attempts", "0", "status") != float64(500) || field(r.body, "webhook", "attempts", "1", "status") != float64(204) {
		t.Fatalf("attempts: %s", r.raw)
	}
	if r.body["callback"].(map[string]any)["headers"] != nil {
		t.Fatalf("the callback's headers are shown: %s", r.raw)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i, b := range rc.bodies {
		h := rc.heads[i]
		if err := webhook.Verify(secret, h, b, time.Minute, time.Now()); err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		if h.Get("webhook-id") != id || h.Get("Authorization") != "Bearer r" {
			t.Fatalf("attempt %d headers %v", i, h)
		}
		var env struct {
			Type string
			Data json.RawMessage
		}
		if err := json.Unmarshal(b, &env); err != nil || env.Type != "job.done" {
			t.Fatalf("body %s", b)
		}
		if err := sign.VerifyJob(env.Data, signingKeys(t, url), nil); err != nil {
			t.Fatalf("the webhook's job does not verify: %v", err)
		}
	}
	if string(rc.bodies[0]) != string(rc.bodies[1]) || rc.heads[0].Get("webhook-id") != rc.heads[1].Get("webhook-id") {
		t.Fatal("a retry differs from the first attempt")
	}
}

func TestJobWebhookRefused(t *testing.T) {
	// No range allowed: a name that resolves to loopback passes the submit
	// check and is refused when connecting, after DNS.
	url, _ := jobServer(t, testJobConfig())
	rc := newReceiver(t, 0)
	port := netip.MustParseAddrPort(strings.TrimPrefix(rc.srv.URL, "http://")).Port()
	id := submit(t, url, map[string]any{"command": []string{"true"}, "callback": map[string]any{"url": fmt.Sprintf("http://localhost:%d/", port)}})
	var r reply
	eventually(t, time.Minute, func() error {
		r = call(t, "GET", url+"/v1/jobs/"+id, nil)
		if field(r.body, "webhook", "gave_up") != true {
			return fmt.Errorf("not given up: %s", r.raw)
		}
		return nil
	})
	if rc.hits.Load() != 0 {
		t.Fatalf("the receiver on loopback got %d requests", rc.hits.Load())
	}
	attempts := r.body["webhook"].(map[string]any)["attempts"].([]any)
	if len(attempts) != 3 || !strings.Contains(fmt.Sprint(field(r.body, "webhook", "attempts", "0", "error")), "refused") {
		t.Fatalf("attempts: %s", r.raw)
	}
}

// A request and a result too large for the job's record go through the
// object store.
func TestJobLarge(t *testing.T) {
	url, _ := jobServer(t, testJobConfig())
	big := strings.Repeat("0123456789abcdef", 100<<10/16)
	id := submit(t, url, map[string]any{"command": []string{"cat", "big.txt"}, "files": []any{map[string]any{"name": "big.txt", "content": big}}})
	r := call(t, "GET", url+"/v1/jobs/"+id+"?wait=20", nil)
	if r.body["status"] != "done" || field(r.body, "result", "run", "stdout") != big {
		t.Fatalf("large job: %.300s", r.raw)
	}
	if err := sign.VerifyJob(r.raw, signingKeys(t, url), nil); err != nil {
		t.Fatal(err)
	}
}
