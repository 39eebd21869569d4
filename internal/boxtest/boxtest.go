// Package boxtest is shared set-up for tests that run real boxes: it builds
// a fresh runbox-init and opens a jail, or says why it cannot (not root).
package boxtest

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/env"
	"github.com/runbox-dev/runbox/internal/jail"
)

// Env is a jail for tests, with the directory its runbox-init lives in.
type Env struct {
	Jail   *jail.Jail
	Config jail.Config
	Dir    string // a temporary directory, removed by Close
}

// Open builds runbox-init into a temporary directory and opens a jail with
// it. It returns a nil Env and the reason when the tests must be skipped.
func Open() (*Env, string, error) {
	if os.Geteuid() != 0 {
		return nil, "requires root (the jail maps host uids and creates cgroups)", nil
	}
	dir, err := os.MkdirTemp("", "boxtest-")
	if err != nil {
		return nil, "", err
	}
	initPath, err := BuildInit(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	cfg := jail.DefaultConfig()
	cfg.InitPath = initPath
	// The embedded environments' mounts, as runbox serve gives them.
	reg, err := env.Load(env.Defaults())
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	have := map[string]bool{}
	for _, b := range cfg.Binds {
		have[b.Dst] = true
	}
	for _, m := range reg.Mounts() {
		if !have[m.Dst] {
			cfg.Binds = append(cfg.Binds, jail.Bind{Src: m.Src, Dst: m.Dst, Optional: true})
		}
	}
	j, err := jail.New(cfg)
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", fmt.Errorf("jail: %w", err)
	}
	return &Env{Jail: j, Config: cfg, Dir: dir}, "", nil
}

// BuildInit builds runbox-init into dir and returns its path.
func BuildInit(dir string) (string, error) {
	_, here, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(here), "..", "..", "cmd", "runbox-init")
	out := filepath.Join(dir, "runbox-init")
	cmd := exec.Command("go", "build", "-o", out, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build runbox-init: %v\n%s", err, b)
	}
	return out, nil
}

// Close closes the jail and removes the directory.
func (e *Env) Close() error {
	err := e.Jail.Close()
	os.RemoveAll(e.Dir)
	return err
}

// Main is a TestMain for packages whose tests run boxes: it opens an Env,
// hands it (or, when the tests must skip, nil and the reason) to use, runs
// the tests and closes the Env. It returns the exit code.
func Main(m *testing.M, use func(be *Env, skipReason string) error) int {
	// Fuzzing (go test -fuzz) runs only its target, which needs no box, in
	// worker processes that each run TestMain and are killed, not ended:
	// a jail opened there would leave its directory behind every time.
	flag.Parse()
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			if err := use(nil, "fuzzing: no jail is opened"); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			return m.Run()
		}
	}
	be, reason, err := Open()
	if err == nil {
		err = use(be, reason)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		if be != nil {
			be.Close()
		}
		return 1
	}
	code := m.Run()
	if be != nil {
		if err := be.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "close jail:", err)
			code = 1
		}
	}
	return code
}

// WaitUntil polls cond until it holds, failing the test after timeout.
func WaitUntil(t testing.TB, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not reached in %v", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
