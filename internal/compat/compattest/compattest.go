// Package compattest starts, for an adapter's tests, the real native API
// (real jail, sessions, jobs on an embedded NATS server) on 127.0.0.1
// with the adapter mounted under its prefix.
package compattest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/api"
	"github.com/runbox-dev/runbox/internal/boxtest"
	"github.com/runbox-dev/runbox/internal/compat"
	"github.com/runbox-dev/runbox/internal/env"
	"github.com/runbox-dev/runbox/internal/job"
	"github.com/runbox-dev/runbox/internal/job/webhook"
	"github.com/runbox-dev/runbox/internal/runner"
	"github.com/runbox-dev/runbox/internal/session"
)

// Formats are webhook formats registered on the tests' job engines (set
// by an adapter's TestMain before Main).
var Formats = map[string]job.Format{}

var (
	box    *boxtest.Env
	reason string
	reg    *env.Registry
)

// Main is an adapter package's TestMain: it opens a jail for the tests,
// or records why they skip (not root).
func Main(m *testing.M) {
	os.Exit(boxtest.Main(m, func(be *boxtest.Env, why string) error {
		box, reason = be, why
		if be == nil {
			return nil
		}
		var err error
		if reg, err = env.Load(env.Defaults()); err == nil {
			reg.Detect(context.Background(), runner.VersionRunner(be.Jail))
		}
		return err
	}))
}

// Config is the native API's configuration in these tests: the server's
// defaults, scaled down.
func Config() api.Config {
	return api.Config{
		Version: "test", CgroupVersion: "v1", Node: "test",
		Defaults: runner.DefaultLimits,
		Maxima: runner.Limits{WallTime: time.Minute, CPUTime: time.Minute, Memory: 2 << 30, Processes: 512, FileSize: 256 << 20,
			OpenFiles: 4096, Output: 16 << 20, Disk: 1 << 30, Stack: runner.DefaultLimits.Stack},
		MaxBoxes: 2, QueueLength: 64, QueueTimeout: 30 * time.Second,
		MaxBodyBytes: 4 << 20, MaxFiles: 64, MaxFilesBytes: 2 << 20, MaxCases: 16, CacheBytes: 64 << 20,
		MaxConnections: 64, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 30 * time.Second,
		MaxResponseBytes: 64 << 20, MemoryBudget: 256 << 20, CommandMaxWallTime: time.Minute,
	}
}

// Server serves the native API with cfg (Config() when zero), the
// adapter that mount returns mounted under prefix, on 127.0.0.1 until
// the test ends, and returns the server's base URL
// ("http://127.0.0.1:port"; the adapter is at base+prefix). Callbacks may
// reach allow.
func Server(t *testing.T, cfg api.Config, prefix string, mount func(n *compat.Native) http.Handler, allow ...string) string {
	t.Helper()
	if box == nil {
		t.Skip(reason)
	}
	if cfg.MaxBoxes == 0 {
		cfg = Config()
	}
	var prefixes []netip.Prefix
	for _, a := range allow {
		prefixes = append(prefixes, netip.MustParsePrefix(a))
	}
	cfg.Jobs, cfg.CallbackPolicy = true, &webhook.Policy{Allow: prefixes}
	log := slog.New(slog.DiscardHandler)
	r := runner.New(box.Jail, reg, runner.NewCache(cfg.CacheBytes, time.Hour))
	r.Defaults = cfg.Defaults
	m := session.NewManager(r, session.Config{}, log)
	cfg.Sessions = m
	srv := api.New(cfg, r, reg, api.NewMetrics(nil), log)
	srv.Mount(prefix, mount(compat.NewNative(srv.Handler(), cfg.MaxResponseBytes)))

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
	jc := job.DefaultConfig
	jc.Node, jc.Workers = "test", 2
	jc.WebhookRetries = []time.Duration{100 * time.Millisecond, 100 * time.Millisecond}
	e, err := job.Open(context.Background(), nc, jc, key, webhook.NewSender(secret, cfg.CallbackPolicy, 2*time.Second), srv.RunJob, log)
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range Formats {
		e.AddFormat(name, f)
	}
	srv.UseJobs(e)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		m.Close()
		e.Close()
		nc.Close()
		emb.Close()
		http.DefaultClient.CloseIdleConnections()
	})
	return fmt.Sprintf("http://%s", ln.Addr())
}
