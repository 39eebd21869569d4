package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/keys"
	"github.com/runbox-dev/runbox/internal/runner"
	"github.com/runbox-dev/runbox/internal/session"
)

// header adds one header to every request of a client.
type header struct{ name, value string }

func (h header) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(h.name, h.value)
	return http.DefaultTransport.RoundTrip(r)
}

func as(name, value string) *http.Client { return &http.Client{Transport: header{name, value}} }

func bearer(secret string) *http.Client { return as("Authorization", "Bearer "+secret) }

func callAs(tb testing.TB, c *http.Client, method, url string, body any) reply {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := sendWith(ctx, c, method, url, body)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

// API keys against real boxes: who may call, what each key sees of the
// others' sessions and jobs, and each quota, tried until it refuses.
func TestAPIKeys(t *testing.T) {
	if testEnv == nil {
		t.Skip(skipReason)
	}
	cfg := testConfig()
	cfg.MaxBoxes = 4
	r := runner.New(testEnv.Jail, testReg, runner.NewCache(cfg.CacheBytes, time.Hour))
	m := session.NewManager(r, session.DefaultConfig, slog.New(slog.DiscardHandler))
	cfg.Sessions = m
	url, _, srv := jobServerOn(t, cfg, r, testJobConfig())
	t.Cleanup(m.Close)

	store := keys.NewFileStore(t.TempDir())
	made := map[string]string{}
	for name, q := range map[string]keys.Quota{
		"alice": {Sessions: 1, Maxima: keys.Maxima{WallTime: 2 * time.Second, Memory: 64 << 20}},
		"bob":   {RequestsPerSecond: 1, Burst: 2},
		"carol": {Boxes: 1, CPUSecondsPerMinute: 0.3},
	} {
		k, secret, err := keys.New(name, q)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Add(k); err != nil {
			t.Fatal(err)
		}
		made[name] = secret
	}
	kr, err := keys.NewKeyring(store, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv.UseKeys(kr, false)
	alice, bob, carol := bearer(made["alice"]), bearer(made["bob"]), bearer(made["carol"])
	hello := map[string]any{"language": "python", "files": []map[string]any{{"name": "main.py", "content": "print('hi')"}}}

	t.Run("who may call", func(t *testing.T) {
		r := call(t, "POST", url+"/v1/run", hello)
		expectProblem(t, r, http.StatusUnauthorized, "header.Authorization")
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
		}
		expectProblem(t, callAs(t, bearer(made["alice"]+"x"), "POST", url+"/v1/run", hello), http.StatusUnauthorized, "header.Authorization")
		// The stored hash is not a key.
		ks, _ := store.List()
		expectProblem(t, callAs(t, bearer(ks[0].Hash), "GET", url+"/v1/info", nil), http.StatusUnauthorized, "header.Authorization")
		expect(t, call(t, "GET", url+"/openapi.json", nil), http.StatusOK)
		for _, c := range []*http.Client{alice, as("X-Auth-Token", made["alice"]), as("X-Api-Key", made["alice"])} {
			r := callAs(t, c, "POST", url+"/v1/run", hello)
			expect(t, r, http.StatusOK)
			if field(r.body, "run", "stdout") != "hi\n" {
				t.Fatalf("run: %s", r.raw)
			}
		}
	})

	t.Run("a key sees only its own sessions and jobs", func(t *testing.T) {
		r := callAs(t, alice, "POST", url+"/v1/sessions", map[string]any{"language": "python"})
		expect(t, r, http.StatusCreated)
		id := r.body["id"].(string)
		defer callAs(t, alice, "DELETE", url+"/v1/sessions/"+id, nil)
		for _, c := range []struct{ method, path string }{
			{"GET", "/v1/sessions/" + id}, {"DELETE", "/v1/sessions/" + id},
			{"GET", "/v1/sessions/" + id + "/files/box"}, {"PUT", "/v1/sessions/" + id + "/files/box/x.txt"},
		} {
			var body any
			if c.method == "PUT" {
				body = []byte("x")
			}
			if r := callAs(t, carol, c.method, url+c.path, body); r.code != http.StatusNotFound {
				t.Errorf("carol %s %s: %d %s", c.method, c.path, r.code, r.raw)
			}
		}
		r = callAs(t, carol, "POST", url+"/v1/sessions/"+id+"/commands", map[string]any{"command": []string{"true"}})
		expect(t, r, http.StatusNotFound)
		if r := callAs(t, carol, "GET", url+"/v1/sessions", nil); strings.Contains(string(r.raw), id) {
			t.Errorf("carol's list shows alice's session: %s", r.raw)
		}
		if r := callAs(t, alice, "GET", url+"/v1/sessions", nil); !strings.Contains(string(r.raw), id) {
			t.Errorf("alice's list lacks her session: %s", r.raw)
		}
		// Sessions: 1 for alice.
		r = callAs(t, alice, "POST", url+"/v1/sessions", map[string]any{"language": "python"})
		expectProblem(t, r, http.StatusTooManyRequests, "")

		r = callAs(t, alice, "POST", url+"/v1/jobs", hello)
		expect(t, r, http.StatusAccepted)
		jid := r.body["id"].(string)
		for _, p := range []string{"", "?wait=1", "/events", "/files/x"} {
			if r := callAs(t, carol, "GET", url+"/v1/jobs/"+jid+p, nil); r.code != http.StatusNotFound {
				t.Errorf("carol GET job%s: %d %.300s", p, r.code, r.raw)
			}
		}
		expect(t, callAs(t, carol, "DELETE", url+"/v1/jobs/"+jid, nil), http.StatusNotFound)
		if r := callAs(t, carol, "GET", url+"/v1/jobs", nil); strings.Contains(string(r.raw), jid) {
			t.Errorf("carol's job list shows alice's job: %s", r.raw)
		}
		r = callAs(t, alice, "GET", url+"/v1/jobs/"+jid+"?wait=30", nil)
		if r.code != http.StatusOK || field(r.body, "status") != "done" || field(r.body, "result", "run", "stdout") != "hi\n" {
			t.Fatalf("alice's job: %d %s", r.code, r.raw)
		}
	})

	t.Run("a key's maxima cap what it asks and the defaults it gets", func(t *testing.T) {
		r := callAs(t, alice, "POST", url+"/v1/run", map[string]any{"language": "python", "limits": map[string]any{"wall_time_ms": 5000},
			"files": []map[string]any{{"name": "main.py", "content": "pass"}}})
		expectProblem(t, r, http.StatusUnprocessableEntity, "body.limits.wall_time_ms")
		if !strings.Contains(string(r.raw), "API key") {
			t.Errorf("the refusal does not say whose maximum: %s", r.raw)
		}
		r = callAs(t, alice, "POST", url+"/v1/run", map[string]any{"language": "python",
			"files": []map[string]any{{"name": "main.py", "content": "b = b'x' * (200 << 20)\nprint(len(b))"}}})
		expect(t, r, http.StatusOK)
		if field(r.body, "run", "status") != "memory_limit" {
			t.Errorf("200 MiB under alice's 64 MiB maximum: %s", r.raw)
		}
		r = callAs(t, alice, "POST", url+"/v1/run", map[string]any{"language": "python",
			"files": []map[string]any{{"name": "main.py", "content": "import time\ntime.sleep(30)"}}})
		expect(t, r, http.StatusOK)
		if w, _ := field(r.body, "run", "wall_time_ms").(float64); field(r.body, "run", "status") != "time_limit" || w > 10000 {
			t.Errorf("a 30 s sleep under alice's 2 s wall maximum: %s", r.raw)
		}
	})

	t.Run("request rate", func(t *testing.T) {
		var last reply
		for i := 0; i < 3; i++ {
			last = callAs(t, bob, "GET", url+"/v1/info", nil)
		}
		expectProblem(t, last, http.StatusTooManyRequests, "")
		if ra, _ := strconv.Atoi(last.header.Get("Retry-After")); ra < 1 {
			t.Errorf("Retry-After %q", last.header.Get("Retry-After"))
		}
		if last.header.Get("RateLimit-Limit") != "2" || last.header.Get("RateLimit-Reset") == "" {
			t.Errorf("RateLimit headers %v", last.header)
		}
	})

	t.Run("boxes at once and CPU per minute", func(t *testing.T) {
		// A background command holds one of carol's boxes until it ends.
		r := callAs(t, carol, "POST", url+"/v1/sessions", map[string]any{"language": "python"})
		expect(t, r, http.StatusCreated)
		id := r.body["id"].(string)
		r = callAs(t, carol, "POST", url+"/v1/sessions/"+id+"/commands", map[string]any{"command": []string{"/bin/sleep", "60"}, "background": true})
		expect(t, r, http.StatusAccepted)
		expectProblem(t, callAs(t, carol, "POST", url+"/v1/run", hello), http.StatusTooManyRequests, "")
		expect(t, callAs(t, carol, "DELETE", url+"/v1/sessions/"+id, nil), http.StatusNoContent)
		eventually(t, 10*time.Second, func() error {
			if r := callAs(t, carol, "POST", url+"/v1/run", hello); r.code != http.StatusOK {
				return fmt.Errorf("after the command ended: %d %s", r.code, r.raw)
			}
			return nil
		})
		spin := map[string]any{"language": "python", "files": []map[string]any{{"name": "main.py",
			"content": "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass"}}}
		expect(t, callAs(t, carol, "POST", url+"/v1/run", spin), http.StatusOK)
		r = callAs(t, carol, "POST", url+"/v1/run", hello)
		expectProblem(t, r, http.StatusTooManyRequests, "")
		if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); ra < 1 || ra > 120 {
			t.Errorf("Retry-After %q after 0.6 s of CPU on 0.3 s a minute", r.header.Get("Retry-After"))
		}
	})

	t.Run("a revoked key is refused", func(t *testing.T) {
		if err := store.Remove("bob"); err != nil {
			t.Fatal(err)
		}
		if err := kr.Reload(); err != nil {
			t.Fatal(err)
		}
		expectProblem(t, callAs(t, bob, "GET", url+"/v1/info", nil), http.StatusUnauthorized, "header.Authorization")
	})

	t.Run("no keys where keys are required", func(t *testing.T) {
		empty, err := keys.NewKeyring(keys.NewFileStore(t.TempDir()), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		srv.UseKeys(empty, true)
		defer srv.UseKeys(kr, false)
		expectProblem(t, call(t, "GET", url+"/v1/info", nil), http.StatusUnauthorized, "header.Authorization")
		srv.UseKeys(empty, false)
		expect(t, call(t, "GET", url+"/v1/info", nil), http.StatusOK)
	})
}
