package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/runbox-dev/runbox/internal/job"
	"github.com/runbox-dev/runbox/internal/job/jsapi"
	"github.com/runbox-dev/runbox/internal/keys"
	"github.com/runbox-dev/runbox/internal/units"
)

const keysUsage = "usage: runbox keys create NAME [quota flags] | list | revoke NAME  [--config FILE] [--data-dir DIR] [--nats URLS]"

// cmdKeys manages API keys where the server keeps them: the data
// directory's keys file, or the cluster's NATS KV bucket (--nats). A
// running server sees each change within a second, without a restart.
func cmdKeys(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, keysUsage)
		return exitUsage
	}
	verb, rest := args[0], args[1:]
	fset := flag.NewFlagSet("runbox keys", flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	where := map[string]*string{"config": fset.String("config", "", ""), "data-dir": fset.String("data-dir", "", ""), "nats": fset.String("nats", "", "")}
	var q keys.Quota
	var maxWall, maxCPU, maxMem string
	if verb == "create" {
		fset.Float64Var(&q.RequestsPerSecond, "rps", 0, "requests per second")
		fset.IntVar(&q.Burst, "burst", 0, "requests at once above the rate")
		fset.IntVar(&q.Boxes, "boxes", 0, "programs running at once")
		fset.Float64Var(&q.CPUSecondsPerMinute, "cpu-per-minute", 0, "CPU seconds per minute")
		fset.IntVar(&q.Sessions, "sessions", 0, "sessions alive at once")
		fset.StringVar(&maxWall, "max-wall-time", "", "highest wall_time a request may ask")
		fset.StringVar(&maxCPU, "max-cpu-time", "", "highest cpu_time a request may ask")
		fset.StringVar(&maxMem, "max-memory", "", "highest memory a request may ask")
		fset.IntVar(&q.Maxima.Processes, "max-processes", 0, "highest processes a request may ask")
	}
	// The name comes first or last: create NAME --rps 5, or create --rps 5 NAME.
	var name string
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		name, rest = rest[0], rest[1:]
	}
	if err := fset.Parse(rest); err != nil {
		fmt.Fprintln(stderr, "runbox keys:", err)
		return exitUsage
	}
	if name == "" && fset.NArg() > 0 {
		name = fset.Arg(0)
	} else if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "runbox keys: unexpected argument %q\n", fset.Arg(0))
		return exitUsage
	}
	for _, d := range []struct {
		flag, val string
		to        *time.Duration
	}{{"max-wall-time", maxWall, &q.Maxima.WallTime}, {"max-cpu-time", maxCPU, &q.Maxima.CPUTime}} {
		if d.val == "" {
			continue
		}
		v, err := units.ParseDuration(d.val)
		if err != nil {
			fmt.Fprintf(stderr, "runbox keys: --%s: %v\n", d.flag, err)
			return exitUsage
		}
		*d.to = v
	}
	if maxMem != "" {
		v, err := units.ParseSize(maxMem)
		if err != nil {
			fmt.Fprintf(stderr, "runbox keys: --max-memory: %v\n", err)
			return exitUsage
		}
		q.Maxima.Memory = v
	}
	switch {
	case verb != "create" && verb != "list" && verb != "revoke":
		fmt.Fprintln(stderr, keysUsage)
		return exitUsage
	case verb == "list" && name != "":
		fmt.Fprintf(stderr, "runbox keys list: unexpected argument %q\n", name)
		return exitUsage
	case verb != "list" && name == "":
		fmt.Fprintf(stderr, "runbox keys %s: a key's NAME is needed\n", verb)
		return exitUsage
	}
	var sargs []string
	for f, v := range where {
		if *v != "" {
			sargs = append(sargs, "--"+f, *v)
		}
	}
	cfg, err := loadServeConfig(sargs, getenvKeys)
	if err != nil {
		fmt.Fprintln(stderr, "runbox keys:", err)
		return exitUsage
	}
	store, done, err := openKeyStore(context.Background(), cfg, nil)
	if err != nil {
		fmt.Fprintln(stderr, "runbox keys:", err)
		return 1
	}
	defer done()
	switch verb {
	case "create":
		k, secret, err := keys.New(name, q)
		if err != nil {
			fmt.Fprintln(stderr, "runbox keys create:", err)
			return exitUsage
		}
		if err := store.Add(k); err != nil {
			fmt.Fprintf(stderr, "runbox keys create %s: %v\n", name, err)
			return 1
		}
		fmt.Fprintln(stdout, secret)
		fmt.Fprintf(stderr, "key %s made; its secret (above) is shown this once: send it as Authorization: Bearer <key>\n", name)
	case "revoke":
		if err := store.Remove(name); err != nil {
			fmt.Fprintf(stderr, "runbox keys revoke %s: %v\n", name, err)
			return 1
		}
		fmt.Fprintf(stderr, "key %s revoked\n", name)
	case "list":
		ks, err := store.List()
		if err != nil {
			fmt.Fprintln(stderr, "runbox keys list:", err)
			return 1
		}
		tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tCREATED\tQUOTA")
		for _, k := range ks {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", k.Name, k.Created.Format(time.RFC3339), quotaText(k.Quota))
		}
		_ = tw.Flush()
	}
	return 0
}

// getenvKeys is the environment runbox keys reads: where the keys are
// (RUNBOX_DATA_DIR, RUNBOX_NATS), nothing of the server's other settings
// that could refuse the command.
func getenvKeys(name string) string {
	switch name {
	case "RUNBOX_DATA_DIR", "RUNBOX_NATS":
		return os.Getenv(name)
	}
	return ""
}

// quotaText is a quota in flag form ("-" for none).
func quotaText(q keys.Quota) string {
	var parts []string
	add := func(on bool, f string, v any) {
		if on {
			parts = append(parts, fmt.Sprintf("--%s %v", f, v))
		}
	}
	add(q.RequestsPerSecond > 0, "rps", q.RequestsPerSecond)
	add(q.Burst > 0, "burst", q.Burst)
	add(q.Boxes > 0, "boxes", q.Boxes)
	add(q.CPUSecondsPerMinute > 0, "cpu-per-minute", q.CPUSecondsPerMinute)
	add(q.Sessions > 0, "sessions", q.Sessions)
	add(q.Maxima.WallTime > 0, "max-wall-time", q.Maxima.WallTime)
	add(q.Maxima.CPUTime > 0, "max-cpu-time", q.Maxima.CPUTime)
	add(q.Maxima.Memory > 0, "max-memory", units.FormatSize(q.Maxima.Memory))
	add(q.Maxima.Processes > 0, "max-processes", q.Maxima.Processes)
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// openKeyStore opens where keys are kept: the NATS KV bucket with --nats
// (over nc when the server has its connection already), else the data
// directory's keys file.
func openKeyStore(ctx context.Context, cfg serveConfig, nc *nats.Conn) (keys.Store, func(), error) {
	if cfg.NATS == "" {
		return keys.NewFileStore(cfg.DataDir), func() {}, nil
	}
	done := func() {}
	if nc == nil {
		var err error
		if nc, err = job.Connect(cfg.NATS, "runbox keys"); err != nil {
			return nil, nil, err
		}
		done = nc.Close
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var s *keys.KVStore
	err := jsapi.Retry(octx, func(ctx context.Context) (err error) {
		s, err = keys.OpenKV(ctx, nc, cfg.NATSReplicas)
		return err
	})
	if err != nil {
		done()
		return nil, nil, err
	}
	return s, done, nil
}

// startKeys opens the server's keyring and decides who may call: with no
// keys, anonymous requests on loopback only, unless allow_anonymous.
func startKeys(ctx context.Context, cfg serveConfig, nc *nats.Conn, log *slog.Logger) (*keys.Keyring, bool, error) {
	store, _, err := openKeyStore(ctx, cfg, nc)
	if err != nil {
		return nil, false, fmt.Errorf("keys: %w", err)
	}
	kr, err := keys.NewKeyring(store, log)
	if err != nil {
		return nil, false, fmt.Errorf("keys: %w", err)
	}
	if err := kr.Follow(ctx); err != nil {
		return nil, false, fmt.Errorf("keys: %w", err)
	}
	public := publicAddrs(cfg)
	required := len(public) > 0 && !cfg.AllowAnonymous
	switch {
	case kr.Empty() && required:
		return nil, false, fmt.Errorf("listening on %s with no API keys: make one (runbox keys create NAME), or set allow_anonymous = true to serve anyone who can reach it", strings.Join(public, ", "))
	case kr.Empty():
		log.Warn("no API keys: every request is anonymous; listening on loopback only (runbox keys create NAME to require keys)")
	default:
		log.Info("keys", "store", storeName(store), "keys", kr.Len())
	}
	return kr, required, nil
}

// publicAddrs are the listen addresses beyond loopback (the main one and
// the compatibility APIs' own).
func publicAddrs(cfg serveConfig) []string {
	compatAddrs := func(cfg serveConfig) []string {
		out := []string{cfg.Listen}
		for _, a := range cfg.CompatListen {
			out = append(out, a)
		}
		return out
	}
	var out []string
	for _, a := range compatAddrs(cfg) {
		host, _, err := net.SplitHostPort(a)
		if err == nil && host == "localhost" {
			continue
		}
		if ip := net.ParseIP(host); err == nil && ip != nil && ip.IsLoopback() {
			continue
		}
		out = append(out, a)
	}
	return out
}

// storeName says where keys are kept, for the log.
func storeName(s keys.Store) string {
	if f, ok := s.(*keys.FileStore); ok {
		return f.Path
	}
	return "nats kv " + keys.Bucket
}
