package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/runbox-dev/runbox/internal/job/sign"
)

// freePorts returns n ports of 127.0.0.1 that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	// All held open at once, so that the n are distinct.
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// buildNATS builds nats-server from the module cache (the version go.mod
// names) into a temporary directory.
func buildNATS(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nats-server")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOPROXY=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build nats-server: %v\n%s", err, out)
	}
	return bin
}

// natsCluster is three nats-servers with JetStream, routed to each other.
type natsCluster struct {
	servers []*proc
	names   []string // server names, servers[i]'s at i
	urls    []string // client URLs, servers[i]'s at i
}

func startNATSCluster(t *testing.T, bin string) *natsCluster {
	t.Helper()
	const n = 3
	ports := freePorts(t, 2*n)
	var routes []string
	c := &natsCluster{}
	for i := range n {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[n+i]))
		c.urls = append(c.urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		c.names = append(c.names, name)
		cmd := exec.Command(bin, "-js", "-sd", t.TempDir(), "-a", "127.0.0.1", "-p", strconv.Itoa(ports[i]),
			"-n", name, "--cluster_name", "runbox", "--cluster", routes[i], "--routes", strings.Join(routes, ","))
		p, err := startProc(t, "nats-server "+name, cmd, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.servers = append(c.servers, p)
	}
	for i, p := range c.servers {
		eventually(t, procStartTimeout, func() error {
			select {
			case <-p.exited:
				t.Fatalf("%s exited:\n%s", p.name, p.lines())
			default:
			}
			conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", ports[i]), time.Second)
			if err == nil {
				conn.Close()
			}
			return err
		})
	}
	return c
}

// index returns the index of the server named name ("n2" is 1), or -1.
func (c *natsCluster) index(name string) int {
	for i, n := range c.names {
		if n == name {
			return i
		}
	}
	return -1
}

// The engine's jobs bucket, job data and queue consumer, as JetStream
// names them.
const (
	natsJobsStream    = "KV_runbox-jobs"
	natsDataStream    = "OBJ_runbox-job-data"
	natsQueueStream   = "RUNBOX_QUEUE"
	natsQueueConsumer = "workers"
)

// leaders returns the servers leading the jobs bucket, the job data and
// the queue's consumer ("" while one is being elected).
func leaders(js jetstream.JetStream) (jobs, data, queue string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, x := range []struct {
		stream string
		to     *string
	}{{natsJobsStream, &jobs}, {natsDataStream, &data}} {
		s, err := js.Stream(ctx, x.stream)
		if err != nil {
			return "", "", "", fmt.Errorf("stream %s: %w", x.stream, err)
		}
		if c := s.CachedInfo().Cluster; c != nil {
			*x.to = c.Leader
		}
	}
	c, err := js.Consumer(ctx, natsQueueStream, natsQueueConsumer)
	if err != nil {
		return "", "", "", fmt.Errorf("consumer %s: %w", natsQueueConsumer, err)
	}
	if cl := c.CachedInfo().Cluster; cl != nil {
		queue = cl.Leader
	}
	return jobs, data, queue, nil
}

// placeLeaders has one server lead the jobs bucket and the job data, and
// another the queue's consumer, and returns the first. When it dies, the
// engine's writes of a job's end and of its data fail until NATS has
// elected new leaders, while its acknowledgements of the queue still land.
func (c *natsCluster) placeLeaders(t *testing.T, nc *nats.Conn, js jetstream.JetStream) string {
	t.Helper()
	var doomed string
	var asked time.Time
	// stepdown asks subject's leader to hand over to preferred, once per
	// election (asking again while one runs would only start another).
	stepdown := func(subject, preferred string) error {
		if time.Since(asked) < 2*time.Second {
			return nil
		}
		asked = time.Now()
		b, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": preferred}})
		m, err := nc.Request(subject, b, 5*time.Second)
		if err != nil {
			return fmt.Errorf("%s: %w", subject, err)
		}
		var resp struct{ Success bool }
		if json.Unmarshal(m.Data, &resp) != nil || !resp.Success {
			return fmt.Errorf("%s: %s", subject, m.Data)
		}
		return nil
	}
	eventually(t, 30*time.Second, func() error {
		jobs, data, queue, err := leaders(js)
		switch {
		case err != nil:
			return err
		case jobs == "" || data == "" || queue == "":
			return fmt.Errorf("leaders being elected: jobs %q, data %q, queue %q", jobs, data, queue)
		case data != jobs:
			doomed = jobs
			return errors.Join(fmt.Errorf("the job data led by %s, the jobs bucket by %s", data, jobs),
				stepdown("$JS.API.STREAM.LEADER.STEPDOWN."+natsDataStream, jobs))
		case queue == jobs:
			other := c.names[(c.index(jobs)+1)%len(c.names)]
			return errors.Join(fmt.Errorf("the queue's consumer led by %s, as the jobs bucket", queue),
				stepdown("$JS.API.CONSUMER.LEADER.STEPDOWN."+natsQueueStream+"."+natsQueueConsumer, other))
		}
		doomed = jobs
		return nil
	})
	return doomed
}

// A 3-node NATS cluster and 3 runbox nodes: one runbox node is killed
// while it runs a job, then the NATS server leading the jobs' records and
// data (not the queue's consumer) while other jobs are about to end.
// Every job ends done once: the killed node's job on a surviving node,
// every record the same (and staying the same) from either survivor,
// every result verifying against the keys of all three nodes.
func TestJobsCluster(t *testing.T) {
	needRoot(t)
	began := time.Now()
	left := checkLeftoversAtEnd(t)
	cluster := startNATSCluster(t, buildNATS(t))
	urls := strings.Join(cluster.urls, ",")
	t.Logf("NATS cluster listening after %v", time.Since(began).Round(time.Millisecond))

	// The test's own connection: to learn when JetStream has a meta
	// leader, and to place the leaders of the engine's streams.
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.Name("jobs test"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, procStartTimeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err
	})

	cfg := writeConfig(t, "nats_replicas = 3\njob_ack_wait = \"3s\"\njob_workers = 2\n")
	nodes := make([]*serveProc, 3)
	start := func(i int) error {
		node := fmt.Sprintf("r%d", i+1)
		var err error
		nodes[i], err = startJobServe(t, "runbox "+node, "--data-dir", t.TempDir(), "--nats", urls, "--node", node,
			"--config", cfg, "--max-boxes", "2")
		return err
	}
	// The first creates the streams and buckets; the others join them.
	if err := start(0); err != nil {
		t.Fatal(err)
	}
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i := 1; i < len(nodes); i++ {
		wg.Go(func() { errs[i] = start(i) })
	}
	wg.Wait()
	for _, n := range nodes {
		if n != nil {
			left.pids = append(left.pids, n.pid())
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	t.Logf("3 runbox nodes listening after %v", time.Since(began).Round(time.Millisecond))
	doomed := cluster.index(cluster.placeLeaders(t, nc, js))
	client := &http.Client{Timeout: httpTimeout}
	defer client.CloseIdleConnections()

	// Half the jobs sleep, so that some run when the kills come and end
	// while NATS elects new leaders (4 to 9s: its raft election timeout);
	// a quarter are large (request and result over the 64KiB a job's
	// record holds), so that their ends go through the object store too.
	const jobs = 12
	large := strings.Repeat("x", 70<<10)
	ids := make([]string, jobs)
	want := make([]string, jobs)
	slow := map[string]bool{}
	for i := range ids {
		want[i] = fmt.Sprintf("job-%d\n", i)
		body := fmt.Sprintf(`{"command":["echo","job-%d"]}`, i)
		switch i % 4 {
		case 0:
			want[i] = large + "\n" + want[i]
			body = fmt.Sprintf(`{"command":["sh","-c","sleep 2; cat; echo; echo job-%d"],"stdin":%q,"limits":{"wall_time_ms":60000}}`, i, large)
		case 2:
			body = fmt.Sprintf(`{"command":["sh","-c","sleep 2; echo job-%d"],"limits":{"wall_time_ms":60000}}`, i)
		}
		ids[i] = submitJob(t, client, nodes[i%len(nodes)].addr, body)
		slow[ids[i]] = i%2 == 0
	}

	// A node running a slow job, and every slow job it runs.
	victim := -1
	var lost []string
	eventually(t, 20*time.Second, func() error {
		lost = lost[:0]
		for _, id := range ids {
			j, err := getJob(client, nodes[0].addr, id)
			if err != nil {
				return err
			}
			if slow[id] && j.Status == "running" && (victim < 0 || j.Node == fmt.Sprintf("r%d", victim+1)) {
				victim, _ = strconv.Atoi(strings.TrimPrefix(j.Node, "r"))
				victim--
				lost = append(lost, id)
			}
		}
		if victim < 0 {
			return errors.New("no slow job is running")
		}
		return nil
	})
	jobsLeader, dataLeader, queueLeader, err := leaders(js)
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	killedNode := fmt.Sprintf("r%d", victim+1)
	t.Logf("killing %s (running %d slow jobs) and %s (the jobs bucket led by %s, the job data by %s, the queue by %s) %v after the start",
		killedNode, len(lost), cluster.names[doomed], jobsLeader, dataLeader, queueLeader, time.Since(began).Round(time.Millisecond))
	nodes[victim].kill(t)
	cluster.servers[doomed].kill(t)
	var survivors []*serveProc
	for i, n := range nodes {
		if i != victim {
			survivors = append(survivors, n)
		}
	}

	// Answers are 503 until NATS has moved the leaders the dead server had.
	var keys []sign.PublicKey
	eventually(t, jobsDoneTimeout, func() error {
		var err error
		keys, err = getKeys(client, survivors[0].addr)
		for i := range nodes {
			if err == nil && keyOf(keys, fmt.Sprintf("r%d", i+1)) == "" {
				err = fmt.Errorf("no key of r%d in %+v", i+1, keys)
			}
		}
		return err
	})
	final := waitJobsEnd(t, client, survivors[0].addr, ids, jobsDoneTimeout)
	if t.Failed() {
		// What the survivors wait for, to tell a stuck node from a slow one.
		for _, s := range survivors {
			t.Logf("goroutines of %s in runbox's code:\n%s", s.name, ownGoroutines(s.goroutines()))
		}
		t.FailNow()
	}
	t.Logf("every job ended %v after the start", time.Since(began).Round(time.Millisecond))
	same := func(a, b jobView) bool {
		return a.Status == b.Status && a.Node == b.Node && a.Runs == b.Runs && a.FinishedAt == b.FinishedAt &&
			a.signature() == b.signature()
	}
	check := func(when string) {
		for i, id := range ids {
			for _, s := range survivors {
				j, err := getJob(client, s.addr, id)
				if err != nil {
					t.Errorf("%s, from %s: %v", when, s.name, err)
					continue
				}
				if !same(j, final[i]) {
					t.Errorf("%s, %s serves %v (finished %s), first read %v (finished %s)", when, s.name, j, j.FinishedAt,
						final[i], final[i].FinishedAt)
				}
			}
		}
	}
	for i, j := range final {
		checkDone(t, j, want[i], keys)
		if j.Node == killedNode && j.Runs == 1 {
			t.Logf("%v: finished on %s before it was killed", j, killedNode)
		}
	}
	for _, id := range lost {
		j := final[indexOf(ids, id)]
		if j.Node == killedNode || j.Runs < 2 {
			t.Errorf("%v was running on %s when it was killed: want it run again (runs >= 2) on a survivor", j, killedNode)
		} else {
			t.Logf("%v: run again after %s was killed", j, killedNode)
		}
	}
	check("at once")
	// A second result would come from a run redelivered after the ack
	// deadline: wait past it and read again.
	time.Sleep(4 * time.Second)
	check("4s later")
	var list struct {
		Jobs []jobView `json:"jobs"`
	}
	if _, err := getJSON(client, "http://"+survivors[1].addr+"/v1/jobs?limit=100", &list); err != nil {
		t.Error(err)
	} else {
		listed := map[string]string{}
		for _, j := range list.Jobs {
			listed[j.ID] = j.Status
		}
		for _, id := range ids {
			if listed[id] != "done" {
				t.Errorf("GET /v1/jobs lists job %s as %q, want done", id, listed[id])
			}
		}
		if len(list.Jobs) != jobs || len(listed) != jobs {
			t.Errorf("GET /v1/jobs lists %d jobs (%d ids), want %d", len(list.Jobs), len(listed), jobs)
		}
	}

	// A session lives on the node that made it; the other serves it by
	// forwarding over NATS.
	sessionThroughOtherNode(t, client, survivors[0].addr, survivors[1].addr)

	// A key made once, in the cluster's KV bucket, is every node's.
	r := runbox(t, "", "keys", "create", "cluster-ci", "--nats", urls)
	key := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(key, "rbx_") {
		t.Fatalf("keys create --nats: %+v", r)
	}
	for _, s := range survivors {
		eventually(t, 10*time.Second, func() error {
			if code, body := keyedPost(t, s.addr, ""); code != http.StatusUnauthorized {
				return fmt.Errorf("%s without a key: %d %s", s.name, code, body)
			}
			return nil
		})
		if code, body := keyedPost(t, s.addr, key); code != http.StatusOK {
			t.Errorf("%s with the key: %d %s", s.name, code, body)
		}
	}
	// A session's calls forwarded to its node carry the key: the owner
	// node checks it again.
	keyed := &http.Client{Transport: bearerTransport{key}}
	sessionThroughOtherNode(t, keyed, survivors[0].addr, survivors[1].addr)

	// The survivors stop on SIGTERM, while NATS still has a quorum; the
	// NATS servers are killed by the clean-ups, then nothing must be left.
	client.CloseIdleConnections()
	for _, s := range survivors {
		s.stop(t)
	}
	t.Logf("done %v after the start", time.Since(began).Round(time.Millisecond))
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// sessionThroughOtherNode makes a session on node a, runs a command in it
// and reads its file through node b, and deletes it through b.
func sessionThroughOtherNode(t *testing.T, client *http.Client, a, b string) {
	t.Helper()
	call := func(method, url, body string) (int, []byte) {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, raw
	}
	code, raw := call("POST", "http://"+a+"/v1/sessions", "{}")
	var created struct{ ID string }
	if code != http.StatusCreated || json.Unmarshal(raw, &created) != nil {
		t.Fatalf("create a session: %d %s", code, raw)
	}
	code, raw = call("POST", "http://"+b+"/v1/sessions/"+created.ID+"/commands", `{"command":["sh","-c","echo forwarded | tee /box/f"]}`)
	if code != http.StatusOK || !strings.Contains(string(raw), `"stdout":"forwarded\n"`) {
		t.Fatalf("a command through the other node: %d %s", code, raw)
	}
	if code, raw = call("GET", "http://"+b+"/v1/sessions/"+created.ID+"/files/box/f", ""); code != http.StatusOK || string(raw) != "forwarded\n" {
		t.Fatalf("a file through the other node: %d %q", code, raw)
	}
	if code, raw = call("DELETE", "http://"+b+"/v1/sessions/"+created.ID, ""); code != http.StatusNoContent {
		t.Fatalf("delete through the other node: %d %s", code, raw)
	}
	if code, _ = call("GET", "http://"+a+"/v1/sessions/"+created.ID, ""); code != http.StatusNotFound {
		t.Fatalf("the deleted session answers %d on its node", code)
	}
}

// bearerTransport sends a key with every request.
type bearerTransport struct{ key string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return http.DefaultTransport.RoundTrip(r)
}
