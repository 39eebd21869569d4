package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/boxtest"
	"github.com/runbox-dev/runbox/internal/clitest"
)

var (
	runboxBin string // the real binary, built once
	initBin   string // a fresh runbox-init, passed with --init
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "clitest-")
	if err != nil {
		panic(err)
	}
	runboxBin, initBin = filepath.Join(dir, "runbox"), filepath.Join(dir, "runbox-init")
	cmd := exec.Command("go", "build", "-o", runboxBin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build runbox: %v\n%s", err, out)
		os.Exit(1)
	}
	if initBin, err = boxtest.BuildInit(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type cliResult struct {
	code           int
	stdout, stderr string
}

func runbox(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	if len(args) > 0 && args[0] == "run" {
		args = append([]string{"run", "--init", initBin}, args[1:]...)
	}
	r := clitest.Run(t, exec.Command(runboxBin, args...), stdin)
	return cliResult{r.Code, r.Stdout, r.Stderr}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("requires root (runbox run creates boxes)")
	}
}

func TestUsageErrors(t *testing.T) {
	cases := [][]string{
		{},
		{"frobnicate"},
		{"run"},
		{"run", "--"},
		{"run", "--memory", "lots", "--", "true"},
		{"run", "--wall-time", "-1s", "--", "true"},
		{"run", "--wall-time", "0", "--", "true"},
		{"run", "--processes", "0", "--", "true"},
		{"run", "--env", "NOEQUALS", "--", "true"},
		{"run", "--no-such-flag", "--", "true"},
		{"run", "--memory", "1k", "--", "true"},
		{"run", "--stdin", "/no/such/file", "--", "true"},
		{"run", "--files", "/no/such/dir", "--", "true"},
	}
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := runbox(t, "", args...)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2 (stderr %q)", r.code, r.stderr)
			}
			if lines := strings.Count(strings.TrimSpace(r.stderr), "\n"); lines != 0 || r.stderr == "" {
				t.Fatalf("want one line on stderr, got %q", r.stderr)
			}
		})
	}
}

func TestJSONResult(t *testing.T) {
	needRoot(t)
	r := runbox(t, "", "run", "--json", "--", "/bin/sh", "-c", `echo hello; echo oops >&2; printf '\377\000' >&2; exit 3`)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, r.stdout)
	}
	for _, k := range []string{"status", "exit_code", "signal", "message", "stdout", "stderr", "stdout_truncated",
		"stderr_truncated", "wall_time_ms", "cpu_time_ms", "memory_bytes"} {
		if _, ok := got[k]; !ok {
			t.Errorf("field %s missing", k)
		}
	}
	if got["status"] != "runtime_error" || got["exit_code"] != 3.0 || got["stdout"] != "hello\n" || got["signal"] != nil {
		t.Errorf("%s", r.stdout)
	}
	raw, err := base64.StdEncoding.DecodeString(fmt.Sprint(got["stderr_base64"]))
	if err != nil || string(raw) != "oops\n\xff\x00" {
		t.Errorf("stderr_base64 %q (%v)", raw, err)
	}
	if _, ok := got["stdout_base64"]; ok {
		t.Error("stdout_base64 present for valid UTF-8")
	}
	if mem, _ := got["memory_bytes"].(float64); mem <= 0 {
		t.Errorf("memory_bytes %v", got["memory_bytes"])
	}
}

func TestExitCodes(t *testing.T) {
	needRoot(t)
	cases := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"--", "/bin/sh", "-c", "echo hi; exit 7"}, 7, "hi\n"},
		{[]string{"--", "/bin/sh", "-c", "kill -SEGV $$"}, 128 + 11, ""},
		{[]string{"--wall-time", "200ms", "--", "sleep", "10"}, 124, ""},
		{[]string{"--cpu-time", "300ms", "--", "/bin/sh", "-c", "while :; do :; done"}, 124, ""},
		{[]string{"--memory", "32MiB", "--", "/usr/bin/python3", "-c", "x = bytearray(64 << 20)"}, 121, ""},
		{[]string{"--output", "100", "--", "yes"}, 120, strings.Repeat("y\n", 50)},
		{[]string{"--", "no-such-command"}, 127, ""},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runbox(t, "", append([]string{"run"}, tc.args...)...)
			if r.code != tc.code || r.stdout != tc.out {
				t.Fatalf("exit %d stdout %q (stderr %q); want %d %q", r.code, r.stdout, r.stderr, tc.code, tc.out)
			}
		})
	}
}

func TestFilesStdinEnv(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "data.txt"), []byte("from the host\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\ncat sub/data.txt; read line; echo \"stdin: $line\"; echo \"env: $GREETING\"\n"), 0o755)
	stdinFile := filepath.Join(dir, "in.txt")
	os.WriteFile(stdinFile, []byte("from a file\n"), 0o644)

	r := runbox(t, "typed\n", "run", "--files", dir, "--env", "GREETING=hi there", "--", "./run.sh")
	if r.code != 0 || r.stdout != "from the host\nstdin: typed\nenv: hi there\n" {
		t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runbox(t, "typed\n", "run", "--files", dir, "--stdin", stdinFile, "--", "./run.sh")
	if !strings.Contains(r.stdout, "stdin: from a file") {
		t.Fatalf("stdout %q", r.stdout)
	}
}

// If runbox itself dies, its box dies with it.
func TestBoxDiesWithRunbox(t *testing.T) {
	needRoot(t)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			marker := fmt.Sprintf("%d.%d", 100+int(sig), os.Getpid())
			cmd := exec.Command(runboxBin, "run", "--init", initBin, "--wall-time", "5m", "--", "sleep", marker)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			waitFor(t, func() bool { return findProcess(marker) != 0 })
			cmd.Process.Signal(sig)
			waitFor(t, func() bool { return findProcess(marker) == 0 })
		})
	}
}

func waitFor(t *testing.T, cond func() bool) { boxtest.WaitUntil(t, 10*time.Second, cond) }

// findProcess returns the pid of a process whose command line contains
// marker, or 0.
func findProcess(marker string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if f := strings.Split(string(b), "\x00"); len(f) > 1 && f[0] == "sleep" && f[1] == marker {
			return pid
		}
	}
	return 0
}

func TestEnvCommands(t *testing.T) {
	if r := runbox(t, "", "env"); r.code != 2 {
		t.Fatalf("runbox env: exit %d", r.code)
	}
	if r := runbox(t, "", "env", "test", "no-such-language"); r.code != 2 || !strings.Contains(r.stderr, "unknown language") {
		t.Fatalf("unknown language: exit %d %q", r.code, r.stderr)
	}
	needRoot(t)
	r := runbox(t, "", "env", "list", "--init", initBin)
	if r.code != 0 || !strings.Contains(r.stdout, "python ") || !strings.Contains(r.stdout, "javascript") {
		t.Fatalf("env list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runbox(t, "", "env", "test", "--init", initBin, "bash", "py")
	if r.code != 0 || strings.Count(r.stdout, " ok ") != 2 {
		t.Fatalf("env test: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestServeConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "runbox.toml")
	os.WriteFile(file, []byte("listen = \"127.0.0.1:9000\"\nmax_boxes = 3\nqueue_timeout = \"2s\"\n[maxima]\nmemory = \"4GiB\"\n"), 0o644)
	getenv := func(k string) string { return map[string]string{"RUNBOX_LISTEN": "127.0.0.1:9001"}[k] }
	cfg, err := loadServeConfig([]string{"--config", file}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	// The file over the defaults, the environment over the file.
	if cfg.Listen != "127.0.0.1:9001" || cfg.MaxBoxes != 3 || cfg.Pool != 3 || time.Duration(cfg.QueueTimeout) != 2*time.Second || cfg.Maxima.Memory != 4<<30 {
		t.Fatalf("%+v", cfg)
	}
	// Flags over everything.
	cfg, err = loadServeConfig([]string{"--config", file, "--listen", "127.0.0.1:9002", "--max-boxes", "5"}, getenv)
	if err != nil || cfg.Listen != "127.0.0.1:9002" || cfg.MaxBoxes != 5 {
		t.Fatalf("%+v %v", cfg, err)
	}
	cfg, err = loadServeConfig(nil, func(string) string { return "" })
	if err != nil || cfg.Listen != "127.0.0.1:8080" || cfg.MaxBoxes < 1 {
		t.Fatalf("defaults: %+v %v", cfg, err)
	}
	for name, text := range map[string]string{
		"unknown setting": "listne = \"x\"\n",
		"bad size":        "max_body = \"huge\"\n",
		"zero boxes":      "max_boxes = 0\n",
		"bad maximum":     "[maxima]\nwall_time = \"-1s\"\n",
	} {
		os.WriteFile(file, []byte(text), 0o644)
		if _, err := loadServeConfig([]string{"--config", file}, getenv); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if r := runbox(t, "", "serve", "--config", "/no/such/file"); r.code != 2 {
		t.Errorf("missing config file: exit %d", r.code)
	}
}

// An environment's mounts: the host path is in every box, read-only, at
// the path the file names.
func TestEnvironmentMounts(t *testing.T) {
	needRoot(t)
	// Not t.TempDir: its parent is 0700, which the box's users cannot
	// cross.
	host, err := os.MkdirTemp("", "envmount-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(host) })
	if err := os.Chmod(host, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(host, "version"), []byte("mounted 1.2.3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	envs := t.TempDir()
	file := `name = "mounted"
version = ["/bin/cat", "/opt/runbox-test-mount/version"]
source = "main.sh"
run = ["/bin/sh", "{main}"]
[[mounts]]
src = "` + host + `"
dst = "/opt/runbox-test-mount"
`
	if err := os.WriteFile(filepath.Join(envs, "mounted.toml"), []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runbox(t, "", "env", "list", "--init", initBin, "--environments", envs, "mounted")
	if r.code != 0 || !strings.Contains(r.stdout, "mounted 1.2.3") {
		t.Fatalf("env list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
