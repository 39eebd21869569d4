package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/runbox-dev/runbox/internal/api"
	"github.com/runbox-dev/runbox/internal/compat"
	"github.com/runbox-dev/runbox/internal/compat/codebox"
	"github.com/runbox-dev/runbox/internal/compat/judge0"
	"github.com/runbox-dev/runbox/internal/compat/opensandbox"
	"github.com/runbox-dev/runbox/internal/compat/piston"
	"github.com/runbox-dev/runbox/internal/compat/sandkasten"
	"github.com/runbox-dev/runbox/internal/compat/sandrun"
	"github.com/runbox-dev/runbox/internal/compat/snekbox"
	"github.com/runbox-dev/runbox/internal/job"
)

// compatAPIs are the peers' APIs runbox serves, by the name that switches
// each on: a thin adapter over the native API, in process.
var compatAPIs = map[string]func(n *compat.Native, cfg serveConfig, log *slog.Logger) http.Handler{
	"piston": func(n *compat.Native, cfg serveConfig, log *slog.Logger) http.Handler {
		// The last message of a native stream repeats the run's output as
		// JSON, where a NUL takes 6 bytes.
		return piston.NewWith(n, piston.Options{Stream: piston.InProcess(n.Handler(), 6*int64(cfg.MaxResponse)+1<<20), Log: log})
	},
	"snekbox": func(n *compat.Native, _ serveConfig, _ *slog.Logger) http.Handler { return snekbox.New(n) },
	"judge0":  func(n *compat.Native, _ serveConfig, _ *slog.Logger) http.Handler { return judge0.New(n) },
	"opensandbox": func(n *compat.Native, _ serveConfig, _ *slog.Logger) http.Handler {
		return opensandbox.New(n)
	},
	"sandkasten": func(n *compat.Native, _ serveConfig, _ *slog.Logger) http.Handler { return sandkasten.New(n) },
	"sandrun":    func(n *compat.Native, _ serveConfig, _ *slog.Logger) http.Handler { return sandrun.New(n) },
	"codebox": func(n *compat.Native, cfg serveConfig, _ *slog.Logger) http.Handler {
		return codebox.New(n, cfg.CodeboxAliases)
	},
}

// addCompatFormats registers the peers' webhook formats on the job engine.
// Every node registers them, whatever its compat setting: a job submitted
// through an adapter on one node may end on another.
func addCompatFormats(e *job.Engine) {
	e.AddFormat("judge0", job.Format{Method: http.MethodPut, Body: judge0.CallbackBody})
}

func compatNames() string {
	names := make([]string, 0, len(compatAPIs))
	for n := range compatAPIs {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// addCompat switches on the APIs of a --compat or RUNBOX_COMPAT value:
// names (or "all"), comma-separated, each optionally with "=ADDR", a
// listener of its own where the API is served at the root.
func addCompat(cfg *serveConfig, value string) error {
	for _, item := range strings.Split(value, ",") {
		name, addr, _ := strings.Cut(strings.TrimSpace(item), "=")
		if name == "" {
			continue
		}
		if name == "all" {
			for n := range compatAPIs {
				cfg.Compat = append(cfg.Compat, n)
			}
			continue
		}
		cfg.Compat = append(cfg.Compat, name)
		if addr != "" {
			if cfg.CompatListen == nil {
				cfg.CompatListen = map[string]string{}
			}
			cfg.CompatListen[name] = addr
		}
	}
	return checkCompat(*cfg)
}

// checkCompat refuses an API runbox does not serve.
func checkCompat(cfg serveConfig) error {
	for _, n := range cfg.Compat {
		if n == "all" {
			continue
		}
		if _, ok := compatAPIs[n]; !ok {
			return fmt.Errorf("compat: unknown API %q (runbox serves: %s, or all)", n, compatNames())
		}
	}
	for n := range cfg.CompatListen {
		if _, ok := compatAPIs[n]; !ok {
			return fmt.Errorf("compat_listen: unknown API %q (runbox serves: %s)", n, compatNames())
		}
	}
	return nil
}

// compatServers are the compatibility APIs' own listeners.
type compatServers []*http.Server

// mountCompat mounts each API switched on under /NAME on the main listener
// and starts the listeners of their own.
func mountCompat(cfg serveConfig, srv *api.Server, log *slog.Logger) (compatServers, error) {
	native := compat.NewNative(srv.Handler(), int64(cfg.MaxResponse))
	on := slices.Clone(cfg.Compat)
	if slices.Contains(on, "all") {
		on = on[:0]
		for n := range compatAPIs {
			on = append(on, n)
		}
	}
	for n := range cfg.CompatListen {
		on = append(on, n)
	}
	sort.Strings(on)
	on = slices.Compact(on)
	var servers compatServers
	for _, name := range on {
		h := compatAPIs[name](native, cfg, log)
		srv.Mount("/"+name, h)
		addr := cfg.CompatListen[name]
		if addr == "" {
			log.Info("compat", "api", name, "prefix", "/"+name)
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			servers.close()
			return nil, fmt.Errorf("compat_listen %s: %w", name, err)
		}
		hs := &http.Server{Handler: srv.Guard(h), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Duration(cfg.IdleTimeout),
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		go func() {
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("compat listener", "api", name, "err", err)
			}
		}()
		log.Info("compat", "api", name, "prefix", "/"+name, "listening", ln.Addr().String())
		servers = append(servers, hs)
	}
	return servers, nil
}

func (s compatServers) close() {
	for _, hs := range s {
		_ = hs.Close()
	}
}
