package client_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/client"
	"github.com/runbox-dev/runbox/internal/api"
	"github.com/runbox-dev/runbox/internal/boxtest"
	"github.com/runbox-dev/runbox/internal/env"
	"github.com/runbox-dev/runbox/internal/job"
	"github.com/runbox-dev/runbox/internal/job/webhook"
	"github.com/runbox-dev/runbox/internal/runner"
	"github.com/runbox-dev/runbox/internal/session"
)

// The tests run the client against the real API on a real listener of
// 127.0.0.1, with the real jail, sessions and jobs (an embedded NATS
// server), as `runbox serve` wires them.

var (
	testEnv    *boxtest.Env
	skipReason string
	testReg    *env.Registry
)

func TestMain(m *testing.M) {
	os.Exit(boxtest.Main(m, func(be *boxtest.Env, reason string) error {
		testEnv, skipReason = be, reason
		if be == nil {
			return nil
		}
		var err error
		if testReg, err = env.Load(env.Defaults()); err == nil {
			testReg.Detect(context.Background(), runner.VersionRunner(be.Jail))
		}
		return err
	}))
}

// testServer serves the whole API until the test ends and returns a
// client of it.
func testServer(t *testing.T, opts ...client.Option) *client.Client {
	t.Helper()
	if testEnv == nil {
		t.Skip(skipReason)
	}
	cfg := api.Config{
		Version: "test", CgroupVersion: "v1",
		Defaults: runner.DefaultLimits,
		Maxima: runner.Limits{WallTime: time.Minute, CPUTime: time.Minute, Memory: 2 << 30, Processes: 512, FileSize: 256 << 20,
			OpenFiles: 4096, Output: 16 << 20, Disk: 1 << 30, Stack: runner.DefaultLimits.Stack},
		MaxBoxes: 2, QueueLength: 64, QueueTimeout: 30 * time.Second,
		MaxBodyBytes: 1 << 20, MaxFiles: 8, MaxFilesBytes: 256 << 10, MaxCases: 16, CacheBytes: 64 << 20,
		MaxConnections: 64, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 30 * time.Second,
		MaxResponseBytes: 64 << 20, MemoryBudget: 256 << 20,
		Jobs: true, CallbackPolicy: &webhook.Policy{}, Node: "n1",
	}
	r := runner.New(testEnv.Jail, testReg, runner.NewCache(cfg.CacheBytes, time.Hour))
	m := session.NewManager(r, session.Config{}, slog.New(slog.DiscardHandler))
	cfg.Sessions = m
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	srv := api.New(cfg, r, testReg, api.NewMetrics(nil), slog.New(slog.DiscardHandler))
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
	})

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
	jc.Workers, jc.AckWait, jc.Node = 2, 5*time.Second, "n1"
	e, err := job.Open(context.Background(), nc, jc, key, webhook.NewSender(secret, cfg.CallbackPolicy, 2*time.Second), srv.RunJob, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv.UseJobs(e)
	// Cleanups run last first: sessions and jobs end before the server.
	t.Cleanup(func() {
		e.Close()
		nc.Close()
		emb.Close()
		m.Close()
	})
	c, err := client.New("http://"+ln.Addr().String(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// available skips the test when the server lacks a language.
func available(t *testing.T, c *client.Client, language string) {
	t.Helper()
	envs, err := c.Environments(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range envs {
		if e.Name == language && e.Available {
			return
		}
	}
	t.Skipf("requires the %s toolchain on this host", language)
}

// testContext ends with the test, and after two minutes at most.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
