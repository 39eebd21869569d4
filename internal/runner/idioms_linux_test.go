package runner

import (
	"os"
	"strings"
	"testing"

	"github.com/runbox-dev/runbox/internal/env"
	"github.com/runbox-dev/runbox/internal/jail"
)

// idiom is a program written the way its language's users write it, with
// what it must print (or, with bad set, a piece of the compile error it
// must fail with).
type idiom struct {
	name  string
	files map[string]string // name → content; main names the main file
	main  string
	stdin string
	args  []string
	want  string
	bad   string
}

// idiomEnv is lang's environment; the test skips when this host lacks its
// toolchain (and fails in CI, which installs them all).
func idiomEnv(t *testing.T, r *Runner, lang string) *env.Environment {
	t.Helper()
	e, err := r.envs.Lookup(lang)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Available {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI installs every environment's toolchain, and %s is unavailable: %s", e.Name, e.Reason)
		}
		t.Skipf("requires the %s toolchain: %s", e.Name, e.Reason)
	}
	return e
}

// runIdiom runs id in lang and checks what it printed, or its compile
// error.
func runIdiom(t *testing.T, r *Runner, lang string, id idiom) {
	t.Helper()
	req := Request{Language: lang, Main: id.main, Stdin: []byte(id.stdin), Args: id.args}
	for name, content := range id.files {
		req.Files = append(req.Files, File{Name: name, Content: []byte(content)})
	}
	resp, err := r.Run(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if id.bad != "" {
		wantCompileError(t, resp, id.bad)
		return
	}
	if resp.Compile != nil && resp.Compile.Status != jail.StatusOK {
		t.Fatalf("compile: %s %s\n%s%s", resp.Compile.Status, resp.Compile.Message, resp.Compile.Stdout, resp.Compile.Stderr)
	}
	if resp.Run == nil {
		t.Fatal("no run")
	}
	if got := string(resp.Run.Stdout); got != id.want {
		t.Fatalf("run: %s %s\nstdout %q, want %q\nstderr %q", resp.Run.Status, resp.Run.Message, got, id.want, resp.Run.Stderr)
	}
}

// wantCompileError wants a failed compile whose output carries the
// compiler's message, and no run.
func wantCompileError(t *testing.T, resp *Response, message string) {
	t.Helper()
	if resp.Compile == nil || resp.Compile.Status == jail.StatusOK {
		t.Fatalf("compiled: %+v", resp.Compile)
	}
	if out := string(resp.Compile.Stdout) + string(resp.Compile.Stderr); !strings.Contains(out, message) {
		t.Fatalf("compile output lacks %q:\n%s", message, out)
	}
	if resp.Run != nil {
		t.Fatal("ran after a failed compile")
	}
}
