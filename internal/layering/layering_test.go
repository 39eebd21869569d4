package layering

import (
	"os/exec"
	"strings"
	"testing"
)

// packages maps every package of the module to its direct imports.
func packages(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}:{{join .Imports \",\"}}", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, imports, _ := strings.Cut(line, ":")
		pkgs[strings.TrimPrefix(name, module+"/")] = strings.Split(imports, ",")
	}
	return pkgs
}

func stdlib(p string) bool { return p == "" || !strings.Contains(strings.Split(p, "/")[0], ".") }

func TestLayering(t *testing.T) {
	pkgs := packages(t)
	if len(pkgs) < 5 {
		t.Fatalf("go list found only %v", pkgs)
	}
	privileged := map[string]bool{"internal/jail": true, "internal/jail/boxinit": true, "internal/cgroup": true, "internal/seccomp": true,
		// memfd_create and its seals, to start the embedded runbox-server
		// (the syscall package has neither on every architecture).
		"internal/serverbin": true}
	for pkg, imports := range pkgs {
		for _, imp := range imports {
			local := strings.TrimPrefix(imp, module+"/")
			// Privilege stays in few places.
			if imp == "golang.org/x/sys/unix" && !privileged[pkg] {
				t.Errorf("%s imports x/sys/unix; only %v may", pkg, privileged)
			}
			switch pkg {
			case "internal/jail/boxinit":
				// The in-box init starts in every box: standard library and
				// x/sys only, nothing of runbox.
				if !stdlib(imp) && imp != "golang.org/x/sys/unix" {
					t.Errorf("boxinit imports %s", imp)
				}
			case "cmd/runbox-init":
				if !stdlib(imp) && local != "internal/jail/boxinit" {
					t.Errorf("runbox-init imports %s", imp)
				}
			case "internal/seccomp", "internal/cgroup", "internal/units", "internal/keys", "internal/web", "internal/image", "internal/testwait", "internal/clitest", "internal/embedbin":
				if strings.HasPrefix(imp, module) {
					t.Errorf("%s is a leaf but imports %s", pkg, imp)
				}
			}
			// The public client is for outsiders: nothing of internal/.
			if (pkg == "client" || strings.HasPrefix(pkg, "client/")) && strings.HasPrefix(local, "internal/") {
				t.Errorf("the public client imports %s", local)
			}
			// Dependencies point one way: the jail never reaches up.
			if strings.HasPrefix(pkg, "internal/jail") && strings.HasPrefix(local, "internal/") &&
				!strings.HasPrefix(local, "internal/jail") && !map[string]bool{"internal/cgroup": true, "internal/seccomp": true, "internal/initbin": true}[local] {
				t.Errorf("%s imports %s", pkg, local)
			}
			if strings.HasPrefix(pkg, "internal/api") && strings.HasPrefix(local, "internal/jail") {
				t.Errorf("%s imports the jail; the API goes through the runner", pkg)
			}
			// Sessions live above the runner: they reach boxes through it.
			if pkg == "internal/session" && (strings.HasPrefix(local, "internal/jail") || strings.HasPrefix(local, "internal/api")) {
				t.Errorf("internal/session imports %s; it goes through the runner and knows nothing of HTTP", local)
			}
			// A compatibility adapter has no execution path of its own: it
			// calls the native API (internal/compat.Native), nothing below.
			if strings.HasPrefix(pkg, "internal/compat/") && pkg != "internal/compat/compattest" && strings.HasPrefix(local, "internal/") &&
				local != "internal/compat" {
				t.Errorf("%s imports %s; an adapter goes through the native API only", pkg, local)
			}
			// Jobs know NATS, not what a request means: the API gives them
			// their work. The relay only moves bytes between nodes.
			if (strings.HasPrefix(pkg, "internal/job") || pkg == "internal/relay") && strings.HasPrefix(local, "internal/") &&
				!strings.HasPrefix(local, "internal/job") {
				t.Errorf("%s imports %s; it may import only its own subpackages", pkg, local)
			}
		}
	}
}

// TestFrontDeps: the front runbox and the run/shell code it shares with
// runbox-server link none of the server's packages, while runbox-server
// itself links them (the check sees what it looks for).
func TestFrontDeps(t *testing.T) {
	for _, tc := range []struct {
		pkg    string
		server bool
	}{
		{"cmd/runbox", false},
		{"internal/cli", false},
		{"internal/serverbin", false},
		{"cmd/runbox-server", true},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", module+"/"+tc.pkg).Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", tc.pkg, err)
			}
			var server []string
			for _, dep := range strings.Fields(string(out)) {
				if ServerPackage(dep) {
					server = append(server, dep)
				}
			}
			switch {
			case tc.server && len(server) == 0:
				t.Errorf("%s links no package of the server: ServerPackage finds nothing", tc.pkg)
			case !tc.server && len(server) > 0:
				t.Errorf("%s links packages of the server (see ServerPackage): %v", tc.pkg, server)
			}
		})
	}
}

func TestServerPackage(t *testing.T) {
	for dep, want := range map[string]bool{
		"net/http": true, "net/http/httptrace": true, "net": false,
		"github.com/prometheus/client_golang/prometheus": true,
		"github.com/danielgtaylor/huma/v2":               true,
		"github.com/nats-io/nats-server/v2/server":       true,
		module + "/client":                               true,
		module + "/client/ws":                            true,
		module + "/internal/jobstore":                    true,
		module + "/internal/job/queue":                   true,
		module + "/internal/jail":                        false,
		module + "/internal/cli":                         false,
		module + "/cmd/runbox":                           false,
	} {
		t.Run(dep, func(t *testing.T) {
			if got := ServerPackage(dep); got != want {
				t.Errorf("ServerPackage(%s) = %v, want %v", dep, got, want)
			}
		})
	}
}
