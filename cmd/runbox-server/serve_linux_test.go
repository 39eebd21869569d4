package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/boxtest"
	"github.com/runbox-dev/runbox/internal/cgroup"
	"github.com/runbox-dev/runbox/internal/clitest"
	"github.com/runbox-dev/runbox/internal/jail"
)

// startServe starts `runbox serve` on a free port of 127.0.0.1 and returns
// it with its address, read from its "listening" log line, and a channel
// closed once it has exited and been reaped (clitest.Serve: stopped by pid
// when the test ends if it is still running).
func startServe(t *testing.T, args ...string) (*exec.Cmd, string, <-chan struct{}) {
	t.Helper()
	cmd := exec.Command(runboxBin, append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir()}, args...)...)
	cmd.Env = append(os.Environ(), "RUNBOX_INIT="+initBin)
	addr, exited := clitest.Serve(t, cmd)
	return cmd, addr, exited
}

// boxProcesses lists the processes running as a box uid that are not in a
// cgroup of a live runbox (other runboxes on this host run boxes too), and
// those in a cgroup of the runbox with pid owner.
func boxProcesses(owner int) []string {
	cfg := jail.DefaultConfig()
	lo, hi := cfg.UIDBase, cfg.UIDBase+2*cfg.UIDSlots
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cg, err := os.ReadFile("/proc/" + e.Name() + "/cgroup")
		if err != nil {
			continue
		}
		if strings.Contains(string(cg), "/"+cfg.CgroupPrefix+strconv.Itoa(owner)+"-") {
			out = append(out, e.Name())
			continue
		}
		status, _ := os.ReadFile("/proc/" + e.Name() + "/status")
		for _, l := range strings.Split(string(status), "\n") {
			f := strings.Fields(l)
			if len(f) < 2 || f[0] != "Uid:" {
				continue
			}
			uid, _ := strconv.Atoi(f[1])
			if uid >= lo && uid < hi && !inLiveRunbox(string(cg), cfg.CgroupPrefix) {
				out = append(out, e.Name())
			}
		}
	}
	return out
}

// inLiveRunbox reports whether a /proc/<pid>/cgroup names a cgroup of a
// runbox that is still running.
func inLiveRunbox(cg, prefix string) bool {
	for _, l := range strings.Split(cg, "\n") {
		i := strings.Index(l, "/"+prefix)
		if i < 0 {
			continue
		}
		pid, err := strconv.Atoi(strings.SplitN(l[i+1+len(prefix):], "-", 2)[0])
		if err == nil && syscall.Kill(pid, 0) != syscall.ESRCH {
			return true
		}
	}
	return false
}

// runboxCgroups lists the cgroup directories of the runbox with pid owner,
// in every hierarchy of our own cgroup (the server's, which it inherits).
func runboxCgroups(t *testing.T, owner int) []string {
	t.Helper()
	l, err := cgroup.Discover()
	if err != nil {
		t.Fatal(err)
	}
	roots := []string{l.V2}
	if l.Version == cgroup.V1 {
		roots = roots[:0]
		for _, d := range l.V1 {
			roots = append(roots, d)
		}
	}
	var out []string
	for _, root := range roots {
		m, _ := filepath.Glob(filepath.Join(root, jail.DefaultConfig().CgroupPrefix+strconv.Itoa(owner)+"-*"))
		out = append(out, m...)
	}
	return out
}

// kill -9 of runbox serve while 50 runs are in flight leaves no box
// behind, and the next start removes the dead server's cgroups and serves.
func TestServeKilledDuringRuns(t *testing.T) {
	needRoot(t)
	cfgFile := filepath.Join(t.TempDir(), "runbox.toml")
	if err := os.WriteFile(cfgFile, []byte("queue_length = 64\npool = 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const runs, boxes = 50, 10
	srv, addr, _ := startServe(t, "--max-boxes", strconv.Itoa(boxes), "--config", cfgFile)
	marker := fmt.Sprintf("300.%d", os.Getpid())
	client := &http.Client{Timeout: 2 * time.Minute}
	var wg sync.WaitGroup
	for range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"command":["sleep",%q],"limits":{"wall_time_ms":60000}}`, marker)
			if resp, err := client.Post("http://"+addr+"/v1/run", "application/json", strings.NewReader(body)); err == nil {
				resp.Body.Close()
			}
		}()
	}
	waitFor(t, func() bool { return countSleepers(marker) >= boxes })
	pid := srv.Process.Pid
	if err := srv.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wg.Wait() // every client sees its connection go
	boxtest.WaitUntil(t, 30*time.Second, func() bool { return countSleepers(marker) == 0 && len(boxProcesses(pid)) == 0 })
	left := runboxCgroups(t, pid)
	if len(left) == 0 {
		t.Fatal("the killed server left no cgroups: nothing for the next start to sweep")
	}
	t.Logf("the killed server left %d cgroup directories", len(left))

	srv2, addr2, exited := startServe(t, "--max-boxes", "2", "--config", cfgFile)
	if left := runboxCgroups(t, pid); len(left) != 0 {
		t.Fatalf("the next start left the dead server's cgroups: %v", left)
	}
	resp, err := client.Post("http://"+addr2+"/v1/run", "application/json", strings.NewReader(`{"command":["/bin/echo","again"]}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"stdout":"again\n"`) {
		t.Fatalf("the next start: %d %s", resp.StatusCode, b)
	}
	client.CloseIdleConnections()
	stopServe(t, srv2, exited)
}

// stopServe sends runbox serve SIGTERM and waits a minute at most for its
// exit.
func stopServe(t *testing.T, srv *exec.Cmd, exited <-chan struct{}) {
	t.Helper()
	srv.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(time.Minute):
		t.Fatal("runbox serve did not stop on SIGTERM")
	}
}

func countSleepers(marker string) int {
	n := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && string(b) == "sleep\x00"+marker+"\x00" {
			n++
		}
	}
	return n
}
