package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/nats-io/nats.go"

	"github.com/runbox-dev/runbox/internal/api"
	"github.com/runbox-dev/runbox/internal/compat/codebox"
	"github.com/runbox-dev/runbox/internal/env"
	"github.com/runbox-dev/runbox/internal/jail"
	"github.com/runbox-dev/runbox/internal/job"
	"github.com/runbox-dev/runbox/internal/job/sign"
	"github.com/runbox-dev/runbox/internal/job/webhook"
	"github.com/runbox-dev/runbox/internal/relay"
	"github.com/runbox-dev/runbox/internal/runner"
	"github.com/runbox-dev/runbox/internal/session"
	"github.com/runbox-dev/runbox/internal/web"
)

// serveConfig is every setting of runbox serve, as the TOML file spells it.
type serveConfig struct {
	Listen          string       `toml:"listen"`
	MaxBoxes        int          `toml:"max_boxes"`
	QueueLength     int          `toml:"queue_length"`
	QueueTimeout    env.Duration `toml:"queue_timeout"`
	MaxBody         env.Size     `toml:"max_body"`
	MaxFiles        int          `toml:"max_files"`
	MaxFilesSize    env.Size     `toml:"max_files_size"`
	MaxCases        int          `toml:"max_cases"`
	Environments    []string     `toml:"environments"`
	CompileCache    env.Size     `toml:"compile_cache"`
	CompileCacheTTL env.Duration `toml:"compile_cache_ttl"`
	Pool            int          `toml:"pool"`
	MaxConnections  int          `toml:"max_connections"`
	ReadTimeout     env.Duration `toml:"read_timeout"`
	WriteTimeout    env.Duration `toml:"write_timeout"`
	IdleTimeout     env.Duration `toml:"idle_timeout"`
	MaxResponse     env.Size     `toml:"max_response"`
	MemoryBudget    env.Size     `toml:"memory_budget"`
	Defaults        env.Limits   `toml:"defaults"`
	Maxima          env.Limits   `toml:"maxima"`

	MaxSessions           int          `toml:"max_sessions"`
	MaxSessionCommands    int          `toml:"max_session_commands"`
	KeptCommands          int          `toml:"kept_commands"`
	SessionIdleTimeout    env.Duration `toml:"session_idle_timeout"`
	SessionMaxIdleTimeout env.Duration `toml:"session_max_idle_timeout"`
	SessionLifetime       env.Duration `toml:"session_lifetime"`
	SessionMaxLifetime    env.Duration `toml:"session_max_lifetime"`
	CommandMaxWallTime    env.Duration `toml:"command_max_wall_time"`

	DataDir        string         `toml:"data_dir"`
	NATS           string         `toml:"nats"`
	Node           string         `toml:"node"`
	NATSReplicas   int            `toml:"nats_replicas"`
	NodeKey        string         `toml:"node_key"`
	JobRetention   env.Duration   `toml:"job_retention"`
	JobWorkers     int            `toml:"job_workers"`
	JobQueueLength int            `toml:"job_queue_length"`
	JobAckWait     env.Duration   `toml:"job_ack_wait"`
	JobMaxRuns     int            `toml:"job_max_runs"`
	JobStore       env.Size       `toml:"job_store"`
	WebhookSecret  string         `toml:"webhook_secret"`
	WebhookRetries []env.Duration `toml:"webhook_retries"`
	WebhookTimeout env.Duration   `toml:"webhook_timeout"`
	WebhookWorkers int            `toml:"webhook_workers"`
	CallbackAllow  []string       `toml:"callback_allow"`

	AllowAnonymous bool `toml:"allow_anonymous"`

	ImageDir      string   `toml:"image_dir"`
	ImageStoreMax env.Size `toml:"image_store_max"`
	ImageMax      env.Size `toml:"image_max"`
	ImageInsecure []string `toml:"image_insecure"`

	Compat         []string          `toml:"compat"`
	CompatListen   map[string]string `toml:"compat_listen"`
	CodeboxAliases map[string]string `toml:"codebox_aliases"`
}

func defaultServeConfig() serveConfig {
	d := jail.Defaults
	return serveConfig{
		Listen:          "127.0.0.1:8080",
		MaxBoxes:        runtime.NumCPU(),
		QueueLength:     64,
		QueueTimeout:    env.Duration(10 * time.Second),
		MaxBody:         16 << 20,
		MaxFiles:        64,
		MaxFilesSize:    8 << 20,
		MaxCases:        64,
		CompileCache:    256 << 20,
		CompileCacheTTL: env.Duration(time.Hour),
		Pool:            -1, // as many as max_boxes
		MaxConnections:  256,
		ReadTimeout:     env.Duration(30 * time.Second),
		WriteTimeout:    env.Duration(60 * time.Second),
		IdleTimeout:     env.Duration(60 * time.Second),
		MaxResponse:     256 << 20,
		MemoryBudget:    1 << 30,
		Defaults: env.Limits{WallTime: env.Duration(d.WallTime), CPUTime: env.Duration(d.CPUTime), Memory: env.Size(d.Memory),
			Processes: d.Processes, FileSize: env.Size(d.FileSize), OpenFiles: d.OpenFiles, Output: env.Size(d.Output), Disk: env.Size(d.Disk)},
		Maxima: env.Limits{WallTime: env.Duration(60 * time.Second), CPUTime: env.Duration(60 * time.Second), Memory: 2 << 30,
			Processes: 512, FileSize: 256 << 20, OpenFiles: 4096, Output: 16 << 20, Disk: 1 << 30},
		MaxSessions:           session.DefaultConfig.MaxSessions,
		MaxSessionCommands:    session.DefaultConfig.MaxCommands,
		KeptCommands:          session.DefaultConfig.KeptCommands,
		SessionIdleTimeout:    env.Duration(session.DefaultConfig.IdleTimeout),
		SessionMaxIdleTimeout: env.Duration(session.DefaultConfig.MaxIdleTimeout),
		SessionLifetime:       env.Duration(session.DefaultConfig.Lifetime),
		SessionMaxLifetime:    env.Duration(session.DefaultConfig.MaxLifetime),
		CommandMaxWallTime:    env.Duration(time.Hour),
		DataDir:               defaultDataDir(os.Geteuid(), os.Getenv),
		NATSReplicas:          job.DefaultConfig.Replicas,
		JobRetention:          env.Duration(job.DefaultConfig.Retention),
		JobWorkers:            -1, // as many as max_boxes
		JobQueueLength:        job.DefaultConfig.MaxQueued,
		JobAckWait:            env.Duration(job.DefaultConfig.AckWait),
		JobMaxRuns:            job.DefaultConfig.MaxRuns,
		JobStore:              env.Size(job.DefaultConfig.StoreBytes),
		WebhookRetries:        durations(job.DefaultConfig.WebhookRetries),
		WebhookTimeout:        env.Duration(job.DefaultConfig.WebhookTimeout),
		WebhookWorkers:        job.DefaultConfig.WebhookWorkers,
		CodeboxAliases:        maps.Clone(codebox.DefaultAliases),
		ImageStoreMax:         20 << 30,
		ImageMax:              4 << 30,
	}
}

// defaultDataDir is /var/lib/runbox for root, else runbox under
// $XDG_STATE_HOME (~/.local/state when unset).
func defaultDataDir(euid int, getenv func(string) string) string {
	if euid == 0 {
		return "/var/lib/runbox"
	}
	if d := getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "runbox")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "state", "runbox")
	}
	return ""
}

func durations(ds []time.Duration) []env.Duration {
	out := make([]env.Duration, len(ds))
	for i, d := range ds {
		out[i] = env.Duration(d)
	}
	return out
}

// jobConfig is the jobs' part of the settings.
func jobConfig(cfg serveConfig) job.Config {
	c := job.Config{Node: cfg.Node, Retention: time.Duration(cfg.JobRetention), Workers: cfg.JobWorkers,
		MaxQueued: cfg.JobQueueLength, AckWait: time.Duration(cfg.JobAckWait), MaxRuns: cfg.JobMaxRuns,
		Replicas: cfg.NATSReplicas, StoreBytes: int64(cfg.JobStore), WebhookTimeout: time.Duration(cfg.WebhookTimeout),
		WebhookWorkers: cfg.WebhookWorkers}
	for _, d := range cfg.WebhookRetries {
		c.WebhookRetries = append(c.WebhookRetries, time.Duration(d))
	}
	return c
}

// sessionConfig is the sessions' part of the settings.
func sessionConfig(cfg serveConfig) session.Config {
	return session.Config{MaxSessions: cfg.MaxSessions, MaxCommands: cfg.MaxSessionCommands, KeptCommands: cfg.KeptCommands,
		IdleTimeout: time.Duration(cfg.SessionIdleTimeout), MaxIdleTimeout: time.Duration(cfg.SessionMaxIdleTimeout),
		Lifetime: time.Duration(cfg.SessionLifetime), MaxLifetime: time.Duration(cfg.SessionMaxLifetime)}
}

func toLimits(l env.Limits) jail.Limits {
	return jail.Limits{WallTime: time.Duration(l.WallTime), CPUTime: time.Duration(l.CPUTime), Memory: int64(l.Memory),
		Processes: l.Processes, FileSize: int64(l.FileSize), OpenFiles: l.OpenFiles, Output: int64(l.Output), Disk: int64(l.Disk),
		Stack: jail.Defaults.Stack}
}

// loadServeConfig applies, in order: the defaults, the TOML file, the
// RUNBOX_* environment variables, the flags.
func loadServeConfig(args []string, getenv func(string) string) (serveConfig, error) {
	cfg := defaultServeConfig()
	fset := flag.NewFlagSet("runbox serve", flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	path := fset.String("config", "", "TOML configuration file")
	listen := fset.String("listen", "", "address to listen on (default 127.0.0.1:8080)")
	maxBoxes := fset.Int("max-boxes", 0, "boxes at once (default: number of CPUs)")
	envDir := fset.String("environments", "", "folder of environment files that add to or override the defaults")
	dataDir := fset.String("data-dir", "", "folder of the node's key, webhook secret and embedded NATS store")
	natsURL := fset.String("nats", "", "external NATS server URLs (comma-separated) instead of the embedded one")
	node := fset.String("node", "", "this node's name (default: the host name)")
	allow := fset.String("callback-allow", "", "address ranges (CIDRs, comma-separated) that callbacks may reach")
	compatFlag := fset.String("compat", "", "peers' APIs to serve: names or all, comma-separated, NAME=ADDR for a listener of its own")
	if err := fset.Parse(args); err != nil {
		return cfg, usageError{err.Error()}
	}
	if fset.NArg() > 0 {
		return cfg, usageError{"unexpected argument " + strconv.Quote(fset.Arg(0))}
	}
	if *path != "" {
		md, err := toml.DecodeFile(*path, &cfg)
		if err != nil {
			return cfg, usageError{"--config: " + err.Error()}
		}
		if und := md.Undecoded(); len(und) > 0 {
			return cfg, usageError{fmt.Sprintf("--config: unknown setting %s", und[0])}
		}
	}
	if v := getenv("RUNBOX_LISTEN"); v != "" {
		cfg.Listen = v
	}
	if v := getenv("RUNBOX_MAX_BOXES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return cfg, usageError{"RUNBOX_MAX_BOXES: want a number"}
		}
		cfg.MaxBoxes = n
	}
	if v := getenv("RUNBOX_ENVIRONMENTS"); v != "" {
		cfg.Environments = append(cfg.Environments, v)
	}
	for _, o := range []struct {
		name string
		to   *string
	}{{"RUNBOX_DATA_DIR", &cfg.DataDir}, {"RUNBOX_NATS", &cfg.NATS}, {"RUNBOX_NODE", &cfg.Node}, {"RUNBOX_WEBHOOK_SECRET", &cfg.WebhookSecret}} {
		if v := getenv(o.name); v != "" {
			*o.to = v
		}
	}
	if v := getenv("RUNBOX_COMPAT"); v != "" {
		if err := addCompat(&cfg, v); err != nil {
			return cfg, usageError{"RUNBOX_COMPAT: " + err.Error()}
		}
	}
	if v := getenv("RUNBOX_CALLBACK_ALLOW"); v != "" {
		cfg.CallbackAllow = append(cfg.CallbackAllow, strings.Split(v, ",")...)
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *maxBoxes != 0 {
		cfg.MaxBoxes = *maxBoxes
	}
	if *envDir != "" {
		cfg.Environments = append(cfg.Environments, *envDir)
	}
	for _, o := range []struct{ from, to *string }{{dataDir, &cfg.DataDir}, {natsURL, &cfg.NATS}, {node, &cfg.Node}} {
		if *o.from != "" {
			*o.to = *o.from
		}
	}
	if *compatFlag != "" {
		if err := addCompat(&cfg, *compatFlag); err != nil {
			return cfg, usageError{"--" + err.Error()}
		}
	}
	if err := checkCompat(cfg); err != nil {
		return cfg, usageError{err.Error()}
	}
	if *allow != "" {
		cfg.CallbackAllow = append(cfg.CallbackAllow, strings.Split(*allow, ",")...)
	}
	if cfg.Pool < 0 {
		cfg.Pool = cfg.MaxBoxes
	}
	if cfg.JobWorkers < 0 {
		cfg.JobWorkers = cfg.MaxBoxes
	}
	if cfg.Node == "" {
		h, _ := os.Hostname()
		cfg.Node = nodeName(h)
	}
	if cfg.NodeKey == "" && cfg.DataDir != "" {
		cfg.NodeKey = filepath.Join(cfg.DataDir, "node.key")
	}
	if !filepath.IsAbs(cfg.DataDir) {
		return cfg, usageError{"data_dir must be an absolute path (set it, or HOME)"}
	}
	if _, err := webhook.ParseAllow(cfg.CallbackAllow); err != nil {
		return cfg, usageError{"callback_allow: " + err.Error()}
	}
	if cfg.WebhookSecret != "" {
		if _, err := webhook.ParseSecret(cfg.WebhookSecret); err != nil {
			return cfg, usageError{"webhook_secret: " + err.Error()}
		}
	}
	if err := jobConfig(cfg).Check(); err != nil {
		return cfg, usageError{err.Error()}
	}
	switch {
	case cfg.MaxBoxes < 1:
		return cfg, usageError{"max_boxes must be at least 1"}
	case cfg.QueueLength < 0:
		return cfg, usageError{"queue_length must not be negative"}
	case cfg.MaxBody < 1024 || cfg.MaxFiles < 1 || cfg.MaxFilesSize < 1 || cfg.MaxCases < 1:
		return cfg, usageError{"max_body, max_files, max_files_size and max_cases must be positive (max_body at least 1KiB)"}
	}
	if err := apiConfig(cfg).Check(); err != nil {
		return cfg, usageError{err.Error()}
	}
	if err := sessionConfig(cfg).Check(); err != nil {
		return cfg, usageError{err.Error()}
	}
	if err := toLimits(cfg.Maxima).Validate(); err != nil {
		return cfg, usageError{"maxima: " + err.Error()}
	}
	if err := toLimits(cfg.Defaults).Validate(); err != nil {
		return cfg, usageError{"defaults: " + err.Error()}
	}
	return cfg, nil
}

func cmdServe(args []string, stderr io.Writer) int {
	cfg, err := loadServeConfig(args, os.Getenv)
	if err != nil {
		fmt.Fprintln(stderr, "runbox serve:", err)
		return exitUsage
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	if err := serve(cfg, log, stderr, nil); err != nil {
		log.Error("serve", "err", err)
		return 1
	}
	return 0
}

// apiConfig is the API's part of the settings.
func apiConfig(cfg serveConfig) api.Config {
	return api.Config{
		Defaults: toLimits(cfg.Defaults), Maxima: toLimits(cfg.Maxima),
		MaxBoxes: cfg.MaxBoxes, QueueLength: cfg.QueueLength, QueueTimeout: time.Duration(cfg.QueueTimeout),
		MaxBodyBytes: int64(cfg.MaxBody), MaxFiles: cfg.MaxFiles, MaxFilesBytes: int64(cfg.MaxFilesSize),
		MaxCases: cfg.MaxCases, CacheBytes: int64(cfg.CompileCache),
		MaxConnections: cfg.MaxConnections, ReadTimeout: time.Duration(cfg.ReadTimeout),
		WriteTimeout: time.Duration(cfg.WriteTimeout), IdleTimeout: time.Duration(cfg.IdleTimeout),
		MaxResponseBytes: int64(cfg.MaxResponse), MemoryBudget: int64(cfg.MemoryBudget),
		CommandMaxWallTime: time.Duration(cfg.CommandMaxWallTime),
		Jobs:               true,
	}
}

// nodeName makes a host name a node name (letters, digits, '-', '_').
func nodeName(h string) string {
	b := []byte(h)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '-'
		}
	}
	if len(b) == 0 {
		return "runbox"
	}
	return string(b[:min(len(b), 64)])
}

// serve runs the server until SIGINT or SIGTERM (or until ready, when
// given, is used by a test to learn the address and stop it).
func serve(cfg serveConfig, log *slog.Logger, stderr io.Writer, ready func(addr string, stop func())) error {
	sources := []fs.FS{env.Defaults()}
	for _, d := range cfg.Environments {
		sources = append(sources, os.DirFS(d))
	}
	reg, err := env.Load(sources...)
	if err != nil {
		return err
	}
	jcfg := jail.DefaultConfig()
	jcfg.Binds = append(jcfg.Binds, envBinds(reg, jcfg.Binds)...)
	jcfg.Pool = cfg.Pool
	jcfg.Logger = log
	if p := os.Getenv("RUNBOX_INIT"); p != "" {
		jcfg.InitPath = p
	}
	j, err := jail.New(jcfg)
	if err != nil {
		return err
	}
	defer j.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	prog := newProgress(stderr)
	// Environments' images are pulled now, as their versions are asked
	// for, and again on first use should the store have evicted one.
	images, err := imagesFor(cfg, reg, true, prog, log)
	if err != nil {
		return err
	}
	reg.DetectEach(ctx, runner.VersionRunnerWith(j, images), prog.detecting)
	prog.done()
	var langs []string
	for _, e := range reg.List() {
		log.Info("environment", "name", e.Name, "available", e.Available, "version", e.VersionText, "reason", e.Reason)
		if e.Available {
			langs = append(langs, e.Name)
		}
	}
	cache := runner.NewCache(int64(cfg.CompileCache), time.Duration(cfg.CompileCacheTTL))
	run := runner.New(j, reg, cache)
	run.Images = images
	run.Defaults = toLimits(cfg.Defaults)
	metrics := api.NewMetrics(func() float64 { return float64(cache.Bytes()) })
	acfg := apiConfig(cfg)
	acfg.Version, acfg.CgroupVersion, acfg.Node = version, j.CgroupVersion(), cfg.Node
	sessions := session.NewManager(run, sessionConfig(cfg), log)
	// Every session ends when the server stops (before the jail closes).
	defer sessions.Close()
	acfg.Sessions = sessions
	allow, _ := webhook.ParseAllow(cfg.CallbackAllow) // checked by loadServeConfig
	acfg.CallbackPolicy = &webhook.Policy{Allow: allow}
	srv := api.New(acfg, run, reg, metrics, log)
	// The playground and the API reference, from files in the binary.
	srv.Handle("GET /{$}", web.Playground())
	srv.Handle("GET "+web.AssetsPrefix, web.Assets())
	srv.Handle("GET /docs", web.Docs())
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	jobs, err := startJobs(ctx, cfg, acfg.CallbackPolicy, srv, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer jobs.close()
	kr, required, err := startKeys(ctx, cfg, jobs.nc, log)
	if err != nil {
		ln.Close()
		return err
	}
	srv.UseKeys(kr, required)
	compats, err := mountCompat(cfg, srv, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer compats.close()
	log.Info("listening", "addr", ln.Addr().String(), "cgroups", j.CgroupVersion(), "max_boxes", cfg.MaxBoxes,
		"languages", strings.Join(langs, ","))
	if ready != nil {
		ready(ln.Addr().String(), stop)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	// Detached from the cancelled ctx on purpose: in-flight runs get a
	// little time to finish before their boxes are killed with the jail.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	// Sessions end while the relay can still release their records.
	sessions.Close()
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// jobsRun is the jobs' part of a running server: the NATS connection (and
// the embedded server, without --nats) and the engine.
type jobsRun struct {
	emb    *job.Embedded
	nc     *nats.Conn
	engine *job.Engine
	relay  *relay.Relay
}

// ownerTTL is how long a dead node's sessions stay recorded as its own
// (a live node renews its records every third of it).
const ownerTTL = time.Minute

// startJobs opens the data directory, the node's key and webhook secret,
// connects to NATS (embedded unless --nats) and starts the job engine.
func startJobs(ctx context.Context, cfg serveConfig, policy *webhook.Policy, srv *api.Server, log *slog.Logger) (*jobsRun, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	key, err := sign.LoadOrCreateKey(cfg.NodeKey)
	if err != nil {
		return nil, fmt.Errorf("node_key: %w", err)
	}
	var secret webhook.Secret
	if cfg.WebhookSecret != "" {
		secret, err = webhook.ParseSecret(cfg.WebhookSecret)
	} else {
		secret, err = webhook.LoadOrCreateSecret(filepath.Join(cfg.DataDir, "webhook_secret"))
	}
	if err != nil {
		return nil, fmt.Errorf("webhook_secret: %w", err)
	}
	r := &jobsRun{}
	if cfg.NATS == "" {
		if r.emb, err = job.StartEmbedded(filepath.Join(cfg.DataDir, "nats"), cfg.Node); err != nil {
			return nil, err
		}
		r.nc, err = r.emb.Connect("runbox " + cfg.Node)
	} else {
		r.nc, err = job.Connect(cfg.NATS, "runbox "+cfg.Node)
	}
	if err != nil {
		r.close()
		return nil, err
	}
	sender := webhook.NewSender(secret, policy, time.Duration(cfg.WebhookTimeout))
	octx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if r.engine, err = job.Open(octx, r.nc, jobConfig(cfg), key, sender, srv.RunJob, log); err != nil {
		r.close()
		return nil, fmt.Errorf("jobs: %w", err)
	}
	addCompatFormats(r.engine)
	srv.UseJobs(r.engine)
	where := "embedded"
	if cfg.NATS != "" {
		where = cfg.NATS
		// Several nodes: a session's calls that reach another node are
		// forwarded to its owner over NATS.
		if r.relay, err = relay.New(octx, r.nc, cfg.Node, srv.Handler(), ownerTTL, cfg.NATSReplicas, log); err != nil {
			r.close()
			return nil, fmt.Errorf("relay: %w", err)
		}
		srv.UseRelay(r.relay)
	}
	log.Info("jobs", "node", cfg.Node, "nats", where, "data_dir", cfg.DataDir, "key_id", sign.KeyID(key.Public().(ed25519.PublicKey)))
	return r, nil
}

// close stops the engine (running jobs go back to the queue), then NATS.
func (r *jobsRun) close() {
	if r.relay != nil {
		r.relay.Close()
	}
	if r.engine != nil {
		r.engine.Close()
	}
	if r.nc != nil {
		_ = r.nc.Drain()
		r.nc.Close()
	}
	if r.emb != nil {
		r.emb.Close()
	}
}
