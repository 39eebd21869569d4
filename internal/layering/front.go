package layering

import "strings"

const module = "github.com/runbox-dev/runbox"

// ServerPackage reports whether the import path pkg is a package of the
// server, which the front (cmd/runbox) must not link, even through another
// package: Go initialises every package of a binary before main, and
// `runbox run` must not pay for HTTP, metrics, OpenAPI, NATS or the
// server's own packages. Each path below covers the packages below it; one
// of this module also covers those named after it (internal/job covers
// internal/jobstore), so that a new sibling of a server package cannot slip
// in.
func ServerPackage(pkg string) bool {
	for _, p := range []string{
		"net/http",
		"github.com/danielgtaylor/huma",
		"github.com/prometheus",
		"github.com/nats-io",
		"github.com/google/go-containerregistry",
		module + "/client",
		module + "/internal/api",
		module + "/internal/compat",
		module + "/internal/job",
		module + "/internal/relay",
		module + "/internal/session",
		module + "/internal/web",
		module + "/internal/keys",
		module + "/internal/image",
	} {
		if pkg == p || strings.HasPrefix(pkg, p+"/") || strings.HasPrefix(p, module+"/") && strings.HasPrefix(pkg, p) {
			return true
		}
	}
	return false
}
