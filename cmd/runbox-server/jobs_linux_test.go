package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/job/sign"
	"github.com/runbox-dev/runbox/internal/testwait"
)

// Bounds of the jobs tests' waits.
const (
	procStartTimeout = time.Minute      // a runbox serve or nats-server until it serves
	procStopTimeout  = 30 * time.Second // a process until it has exited after its signal
	boxesGoneTimeout = 30 * time.Second // a killed server's boxes until they are gone
	tailLines        = 40               // lines of a process's log shown when a test fails
	httpTimeout      = 10 * time.Second // one API call
	jobsDoneTimeout  = 40 * time.Second // the jobs of a test until they have all ended
	pollInterval     = 50 * time.Millisecond
)

// proc is a process a jobs test started: runbox serve or nats-server. The
// last lines of its stderr are kept and shown when the test fails.
type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{} // closed once it has exited and been reaped

	mu   sync.Mutex
	tail []string
	all  []string // every line, the first maxAllLines
}

// maxAllLines bounds what a proc keeps of its whole log.
const maxAllLines = 100000

// startProc starts cmd, calling onLine with each line of its stderr. It
// is killed (by pid) when the test ends if it still runs.
func startProc(t *testing.T, name string, cmd *exec.Cmd, onLine func(string)) (*proc, error) {
	t.Helper()
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{})}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		defer close(p.exited)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.add(sc.Text())
			if onLine != nil {
				onLine(sc.Text())
			}
		}
		// Keep reading so that the process never blocks on its log.
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of %s (pid %d):\n%s", name, cmd.Process.Pid, p.lines())
			// What a runbox still running was waiting for.
			if strings.HasPrefix(name, "runbox") && !p.hasExited() {
				t.Logf("goroutines of %s in runbox's code:\n%s", name, ownGoroutines(p.goroutines()))
			}
		}
		_ = cmd.Process.Kill()
		select {
		case <-p.exited:
		case <-time.After(procStopTimeout):
			t.Errorf("%s (pid %d) not reaped %v after SIGKILL", name, cmd.Process.Pid, procStopTimeout)
		}
	})
	return p, nil
}

func (p *proc) add(line string) {
	p.mu.Lock()
	if len(p.all) < maxAllLines {
		p.all = append(p.all, line)
	}
	p.mu.Unlock()
	// A runbox's access log and environments would push out what matters.
	if strings.Contains(line, `"msg":"request"`) || strings.Contains(line, `"msg":"environment"`) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tail = append(p.tail, line)
	if len(p.tail) > tailLines {
		p.tail = p.tail[len(p.tail)-tailLines:]
	}
}

func (p *proc) lines() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// log is every line it wrote (the first maxAllLines).
func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.all, "\n")
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// kill sends SIGKILL and waits for the exit.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill %s: %v", p.name, err)
	}
	p.wait(t)
}

// wait waits for the exit, procStopTimeout at most.
func (p *proc) wait(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(procStopTimeout):
		t.Fatalf("%s (pid %d) did not exit within %v", p.name, p.pid(), procStopTimeout)
	}
}

// serveProc is a runbox serve with the address it listens on.
type serveProc struct {
	*proc
	addr string
}

// startJobServe starts `runbox serve` on a free port of 127.0.0.1 with
// args (which name its data dir) and waits for its "listening" line. An
// error (with its log) means it exited or did not listen in time.
func startJobServe(t *testing.T, name string, args ...string) (*serveProc, error) {
	t.Helper()
	cmd := exec.Command(runboxBin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), "RUNBOX_INIT="+initBin, "GOTRACEBACK=all")
	addr := make(chan string, 1)
	p, err := startProc(t, name, cmd, func(l string) {
		var line struct{ Msg, Addr string }
		if json.Unmarshal([]byte(l), &line) == nil && line.Msg == "listening" {
			select {
			case addr <- line.Addr:
			default:
			}
		}
	})
	if err != nil {
		return nil, err
	}
	select {
	case a := <-addr:
		return &serveProc{proc: p, addr: a}, nil
	case <-p.exited:
		return nil, fmt.Errorf("%s exited before listening:\n%s", name, p.lines())
	case <-time.After(procStartTimeout):
		return nil, fmt.Errorf("%s did not listen within %v:\n%s\nits goroutines:\n%s", name, procStartTimeout,
			p.lines(), p.goroutines())
	}
}

func (p *proc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// framePos is what a traceback's frame line has after its file and line.
var framePos = regexp.MustCompile(` fp=0x[0-9a-f]+ sp=0x[0-9a-f]+ pc=0x[0-9a-f]+`)

// ownGoroutines keeps the goroutines of a Go traceback that run runbox's
// own packages.
func ownGoroutines(dump string) string {
	var out []string
	for _, g := range strings.Split(dump, "\n\n") {
		if strings.Contains(g, "runbox-dev/runbox/") {
			out = append(out, framePos.ReplaceAllString(g, ""))
		}
	}
	return strings.Join(out, "\n\n")
}

// goroutines ends a process that hangs with SIGQUIT and returns what the
// Go runtime printed then: every goroutine's stack (GOTRACEBACK=all), and
// its last environment and request lines, which the tail leaves out.
func (p *proc) goroutines() string {
	p.mu.Lock()
	from := len(p.all)
	p.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.exited:
	case <-time.After(procStopTimeout):
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var before []string
	for i := from - 1; i >= 0 && len(before) < 3; i-- {
		if strings.Contains(p.all[i], `"msg":"request"`) || strings.Contains(p.all[i], `"msg":"environment"`) {
			before = append(before, p.all[i])
		}
	}
	slices.Reverse(before)
	return strings.Join(append(before, p.all[from:]...), "\n")
}

// stop sends SIGTERM and waits for the exit.
func (s *serveProc) stop(t *testing.T) {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	s.wait(t)
}

// eventually polls until a condition holds (testwait.Eventually).
var eventually = testwait.Eventually

// jobView is what the jobs tests read of GET /v1/jobs/{id}; raw is the
// whole answer, for sign.VerifyJob.
type jobView struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	Node       string `json:"node"`
	Runs       int    `json:"runs"`
	StartedAt  string `json:"started_at"`
	FinishedAt string `json:"finished_at"`
	Error      string `json:"error"`
	Result     struct {
		Run struct {
			Status string `json:"status"`
			Stdout string `json:"stdout"`
		} `json:"run"`
	} `json:"result"`
	Signature *struct {
		KeyID string `json:"key_id"`
		Value string `json:"value"`
	} `json:"signature"`
	raw []byte
}

// signature is the signature's value, or "" when the job is not signed.
func (j jobView) signature() string {
	if j.Signature == nil {
		return ""
	}
	return j.Signature.Value
}

func (j jobView) String() string {
	return fmt.Sprintf("job %s: %s on %q, runs %d, error %q, run %s stdout %s", j.ID, j.Status, j.Node, j.Runs,
		j.Error, j.Result.Run.Status, short(j.Result.Run.Stdout))
}

// short quotes s, or says how long it is and how it ends.
func short(s string) string {
	if len(s) <= 64 {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("(%d bytes ending %q)", len(s), s[len(s)-32:])
}

// getJSON GETs url and decodes a 200 answer into out, returning the body.
func getJSON(client *http.Client, url string, out any) ([]byte, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return b, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return b, fmt.Errorf("GET %s: %w in %s", url, err, b)
	}
	return b, nil
}

func getJob(client *http.Client, addr, id string) (jobView, error) {
	var j jobView
	b, err := getJSON(client, "http://"+addr+"/v1/jobs/"+id, &j)
	j.raw = b
	return j, err
}

func getKeys(client *http.Client, addr string) ([]sign.PublicKey, error) {
	var out struct{ Keys []sign.PublicKey }
	_, err := getJSON(client, "http://"+addr+"/v1/keys", &out)
	return out.Keys, err
}

// submitJob posts a job and returns its id.
func submitJob(t *testing.T, client *http.Client, addr, body string) string {
	t.Helper()
	var acc struct{ ID, Status string }
	post(t, client, "http://"+addr+"/v1/jobs", body, http.StatusAccepted, &acc)
	if acc.ID == "" || acc.Status != "queued" {
		t.Fatalf("submit %s: %+v", body, acc)
	}
	return acc.ID
}

// waitJobsEnd polls jobs on addr until every one has ended, and returns
// them as last read. Errors of the API are retried (its NATS may be
// failing over); the test fails, listing them, if some have not ended
// after timeout.
func waitJobsEnd(t *testing.T, client *http.Client, addr string, ids []string, timeout time.Duration) []jobView {
	t.Helper()
	views := make([]jobView, len(ids))
	ended := make([]bool, len(ids))
	deadline := time.Now().Add(timeout)
	for {
		var open []string
		for i, id := range ids {
			if ended[i] {
				continue
			}
			j, err := getJob(client, addr, id)
			switch {
			case err != nil:
				open = append(open, err.Error())
			case j.Status == "done" || j.Status == "cancelled" || j.Status == "failed":
				views[i], ended[i] = j, true
			default:
				views[i] = j
				open = append(open, j.String())
			}
		}
		if len(open) == 0 {
			return views
		}
		if time.Now().After(deadline) {
			t.Errorf("%d of %d jobs not ended within %v:\n%s", len(open), len(ids), timeout, strings.Join(open, "\n"))
			return views
		}
		time.Sleep(pollInterval)
	}
}

// checkDone fails the test unless j is done with stdout and verifies
// against keys.
func checkDone(t *testing.T, j jobView, stdout string, keys []sign.PublicKey) {
	t.Helper()
	if j.Status != "done" || j.Result.Run.Status != "ok" || j.Result.Run.Stdout != stdout || j.Signature == nil {
		t.Errorf("%v; want done, ok, stdout %s, signed", j, short(stdout))
		return
	}
	if err := sign.VerifyJob(j.raw, keys, nil); err != nil {
		t.Errorf("job %s does not verify: %v", j.ID, err)
	}
}

// keyOf returns the key id of node in keys.
func keyOf(keys []sign.PublicKey, node string) string {
	for _, k := range keys {
		if k.Node == node {
			return k.KeyID
		}
	}
	return ""
}

// runboxMountCount counts the host's mounts that name runbox.
func runboxMountCount(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(strings.ToLower(string(b)), "runbox")
}

// checkNoLeftovers fails the test if a box of the runboxes with pids, or
// a runbox mount beyond those there were before, is left.
func checkNoLeftovers(t *testing.T, mountsBefore int, pids ...int) {
	t.Helper()
	eventually(t, boxesGoneTimeout, func() error {
		for _, pid := range pids {
			if p := boxProcesses(pid); len(p) != 0 {
				return fmt.Errorf("box processes of runbox %d left: %v", pid, p)
			}
		}
		if n := runboxMountCount(t); n > mountsBefore {
			return fmt.Errorf("%d runbox mounts in the host's table, %d before", n, mountsBefore)
		}
		return nil
	})
}

// leftovers are the runboxes a test started, checked when it ends.
type leftovers struct {
	mounts int   // runbox mounts before the test
	pids   []int // the runboxes' pids
}

// checkLeftoversAtEnd checks, when the test ends, that the runboxes whose
// pids it adds to the result left no box and no mount. Registered before
// the processes start, the check runs after their clean-ups killed them.
func checkLeftoversAtEnd(t *testing.T) *leftovers {
	t.Helper()
	l := &leftovers{mounts: runboxMountCount(t)}
	t.Cleanup(func() {
		checkNoLeftovers(t, l.mounts, l.pids...)
		// A runbox killed with SIGKILL leaves its cgroups to the next
		// runbox started beside it, which removes them: start one.
		if out, err := exec.Command(runboxBin, "run", "--init", initBin, "--", "true").CombinedOutput(); err != nil {
			t.Errorf("runbox run: %v: %s", err, out)
		}
		for _, pid := range l.pids {
			if dirs := cgroupsOf(pid); len(dirs) > 0 {
				t.Errorf("cgroups of runbox %d left: %v", pid, dirs)
			}
		}
	})
	return l
}

// cgroupsOf lists the cgroup directories of the runbox with this pid.
func cgroupsOf(pid int) []string {
	var out []string
	prefix := fmt.Sprintf("runbox-%d-", pid)
	_ = filepath.WalkDir("/sys/fs/cgroup", func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), prefix) {
			out = append(out, path)
			return filepath.SkipDir
		}
		if strings.Count(path, "/") > 10 {
			return filepath.SkipDir
		}
		return nil
	})
	return out
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "runbox.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// kill -9 of a runbox serve (embedded NATS) with one job running and three
// queued loses none: after a start on the same data dir the queued ones
// run, the one that was running runs again once its ack deadline passes,
// and all are signed with the node's same key.
func TestJobsSurviveKill(t *testing.T) {
	needRoot(t)
	left := checkLeftoversAtEnd(t)
	cfg := writeConfig(t, "job_workers = 1\njob_ack_wait = \"2s\"\n")
	args := []string{"--data-dir", t.TempDir(), "--config", cfg, "--node", "n1", "--max-boxes", "2"}
	srv, err := startJobServe(t, "runbox serve", args...)
	if err != nil {
		t.Fatal(err)
	}
	left.pids = append(left.pids, srv.pid())
	client := &http.Client{Timeout: httpTimeout}
	defer client.CloseIdleConnections()
	keys, err := getKeys(client, srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	keyID := keyOf(keys, "n1")
	if keyID == "" {
		t.Fatalf("GET /v1/keys has no key of n1: %+v", keys)
	}

	slow := submitJob(t, client, srv.addr, `{"command":["sh","-c","sleep 6; echo slept"],"limits":{"wall_time_ms":60000}}`)
	eventually(t, 20*time.Second, func() error {
		j, err := getJob(client, srv.addr, slow)
		if err == nil && j.Status != "running" {
			err = fmt.Errorf("%v, want running", j)
		}
		return err
	})
	quick := make([]string, 3)
	for i := range quick {
		quick[i] = submitJob(t, client, srv.addr, fmt.Sprintf(`{"command":["echo","quick-%d"]}`, i))
	}
	// One worker, busy with the slow job: the quick ones wait.
	for _, id := range quick {
		if j, err := getJob(client, srv.addr, id); err != nil || j.Status != "queued" {
			t.Fatalf("%v (%v), want queued before the kill", j, err)
		}
	}
	srv.kill(t)
	checkNoLeftovers(t, left.mounts, srv.pid())

	restarted := time.Now()
	srv, err = startJobServe(t, "runbox serve (restarted)", args...)
	if err != nil {
		t.Fatal(err)
	}
	left.pids = append(left.pids, srv.pid())
	if keys, err = getKeys(client, srv.addr); err != nil {
		t.Fatal(err)
	}
	if got := keyOf(keys, "n1"); got != keyID {
		t.Fatalf("n1's key after the restart is %q, was %q", got, keyID)
	}
	ended := waitJobsEnd(t, client, srv.addr, append(quick, slow), jobsDoneTimeout)
	for i, j := range ended[:len(quick)] {
		checkDone(t, j, fmt.Sprintf("quick-%d\n", i), keys)
	}
	j := ended[len(quick)]
	checkDone(t, j, "slept\n", keys)
	if j.Runs < 2 || j.Node != "n1" {
		t.Errorf("%v; want runs >= 2 (it was killed mid-run) on n1", j)
	}
	if started, err := time.Parse(time.RFC3339Nano, j.StartedAt); err == nil {
		t.Logf("the killed job ran again (runs %d), started %v after the restart began", j.Runs, started.Sub(restarted).Round(time.Millisecond))
	}

	client.CloseIdleConnections()
	srv.stop(t)
}
