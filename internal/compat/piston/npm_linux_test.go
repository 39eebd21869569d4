package piston

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// pistonClientVersion is the npm piston-client the test runs: the latest
// `npm view piston-client version` showed (pinned, with its dependencies,
// by testdata/npm/package-lock.json).
const pistonClientVersion = "1.0.2"

// The real npm client, unchanged but for its server: runtimes, and
// execute (which sends its JSON as text/plain, with args ["1","2","3"]
// and Piston's default timeouts).
func TestNPMClient(t *testing.T) {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not on PATH", tool)
		}
	}
	base := server(t)
	if !available(t, base)["python"] {
		t.Skip("python is not available on this host")
	}
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "client.mjs"} {
		b, err := os.ReadFile(filepath.Join("testdata", "npm", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	install := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--no-update-notifier")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			// .ci/run fetched it: in CI the client must run.
			t.Fatalf("npm cannot install piston-client@%s: %v\n%s", pistonClientVersion, err, out)
		}
		t.Skipf("npm cannot install piston-client@%s (no network?): %v\n%s", pistonClientVersion, err, out)
	}
	run := exec.CommandContext(ctx, "node", "client.mjs", base+"/piston")
	run.Dir = dir
	out, err := run.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var got struct {
		Runtimes []struct {
			Language string   `json:"language"`
			Version  string   `json:"version"`
			Aliases  []string `json:"aliases"`
		} `json:"runtimes"`
		Result, Stdin struct {
			Language string `json:"language"`
			Version  string `json:"version"`
			Run      struct {
				Stdout string  `json:"stdout"`
				Code   *int    `json:"code"`
				Status *string `json:"status"`
			} `json:"run"`
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("client output %q: %v", out, err)
	}
	python := ""
	for _, rt := range got.Runtimes {
		if rt.Language == "python" {
			python = rt.Version
		}
	}
	if python == "" || !semverRE.MatchString(python) {
		t.Errorf("runtimes %+v: no python with a SemVer version", got.Runtimes)
	}
	for name, r := range map[string]struct {
		res  string
		want string
	}{"print(1)": {got.Result.Run.Stdout, "1\n"}, "stdin": {got.Stdin.Run.Stdout, "cba\n"}} {
		if r.res != r.want {
			t.Errorf("%s: stdout %q, want %q; client output %s", name, r.res, r.want, out)
		}
	}
	if got.Result.Language != "python" || got.Result.Version != python || got.Result.Run.Code == nil || *got.Result.Run.Code != 0 ||
		got.Result.Run.Status != nil {
		t.Errorf("execute: %s", out)
	}
}
