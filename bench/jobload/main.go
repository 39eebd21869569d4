// Command jobload sends N identical requests to a runbox server at a given
// concurrency, either synchronously through POST /v1/run or through the
// jobs queue, and prints one line: p50 and p99 latency in ms, requests (or
// jobs) per second, errors, and for the jobs modes the p50 of the queue's
// overhead in ms: a job's latency less the run time the job itself reports
// (finished_at − started_at).
//
//	jobload -url http://127.0.0.1:8080 -n 300 -c 4 -mode jobs -body '{"command":["/bin/true"]}'
//
// Modes: sync times POST /v1/run to its answer. jobs submits to /v1/jobs
// and reads the job with one long poll (GET /v1/jobs/{id}?wait=30), which
// answers when it ends: submit to result in hand. jobs-sse follows GET
// /v1/jobs/{id}/events to the terminal status event instead, the clock
// stopped there (the GET that follows checks the job, untimed, but counts
// in the rate). An answer that is not 2xx, a run not ok or a job
// not done is an error. With -v, the p50 of each leg of a job goes to
// stderr, to show where the overhead is spent.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// maxEventLine bounds one line of the event stream (an output event
// carries up to 32 KiB, larger once JSON-escaped).
const maxEventLine = 1 << 20

// A job's legs, in order; each ends where the next begins.
var legNames = []string{"submit→created", "created→202", "created→started", "started→finished", "finished→end event", "end event→GET"}

type sample struct {
	lat      time.Duration
	overhead time.Duration
	legs     []time.Duration // jobs modes only
	err      error
}

type loader struct {
	base   string
	body   []byte
	client *http.Client
	// atEvent stops the clock at the terminal event rather than after the
	// job's GET.
	atEvent bool
	sse     bool // learn the end from the events stream
}

// call sends a request and decodes a 2xx answer's JSON into out.
func (l *loader) call(method, path string, body []byte, out any) error {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, l.base+path, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return nil
}

type runOut struct {
	Run *struct {
		Status string `json:"status"`
	} `json:"run"`
}

func (r runOut) ok() bool { return r.Run != nil && r.Run.Status == "ok" }

// sync runs the body once through /v1/run.
func (l *loader) sync() sample {
	start := time.Now()
	var out runOut
	err := l.call(http.MethodPost, "/v1/run", l.body, &out)
	s := sample{lat: time.Since(start), err: err}
	if err == nil && !out.ok() {
		s.err = errors.New("the run's status is not ok")
	}
	return s
}

type jobView struct {
	ID         string    `json:"id"`
	Status     string    `json:"status"`
	CreatedAt  time.Time `json:"created_at"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Error      string    `json:"error"`
	Result     *runOut   `json:"result"`
}

// job submits the body as a job and waits for its result.
func (l *loader) job() sample {
	start := time.Now()
	var acc jobView
	if err := l.call(http.MethodPost, "/v1/jobs", l.body, &acc); err != nil {
		return sample{lat: time.Since(start), err: err}
	}
	accepted := time.Now()
	var j jobView
	var status string
	var ended time.Time
	if l.sse {
		// Follow the events to the end, then read the job.
		var err error
		if status, ended, err = l.waitEnd(acc.ID); err != nil {
			return sample{lat: time.Since(start), err: err}
		}
		err = l.call(http.MethodGet, "/v1/jobs/"+acc.ID, nil, &j)
		if err != nil {
			return sample{lat: time.Since(start), err: err}
		}
	} else {
		// One long poll that answers with the ended job.
		if err := l.call(http.MethodGet, "/v1/jobs/"+acc.ID+"?wait=30", nil, &j); err != nil {
			return sample{lat: time.Since(start), err: err}
		}
		status, ended = j.Status, time.Now()
	}
	got := time.Now()
	s := sample{lat: got.Sub(start)}
	if l.atEvent {
		s.lat = ended.Sub(start)
	}
	var err error
	switch {
	case err != nil:
		return s
	case status != "done" || j.Status != "done":
		s.err = fmt.Errorf("job %s ended %s (%s) %s", j.ID, status, j.Status, j.Error)
		return s
	case j.Result == nil || !j.Result.ok():
		s.err = fmt.Errorf("job %s: the run's status is not ok", j.ID)
		return s
	}
	s.overhead = s.lat - j.FinishedAt.Sub(j.StartedAt)
	// The server's times and ours come from the same clock: one machine.
	s.legs = []time.Duration{j.CreatedAt.Sub(start), accepted.Sub(j.CreatedAt), j.StartedAt.Sub(j.CreatedAt),
		j.FinishedAt.Sub(j.StartedAt), ended.Sub(j.FinishedAt), got.Sub(ended)}
	return s
}

// waitEnd follows a job's events to its terminal status and returns it
// with the time it was received.
func (l *loader) waitEnd(id string) (string, time.Time, error) {
	resp, err := l.client.Get(l.base + "/v1/jobs/" + id + "/events")
	if err != nil {
		return "", time.Time{}, err
	}
	defer func() {
		// The server ends the stream after the terminal event; reading it
		// to its end lets the connection be used again.
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return "", time.Time{}, fmt.Errorf("events of job %s: %d %s", id, resp.StatusCode, bytes.TrimSpace(b))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxEventLine)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			event = ""
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(line[len("event:"):])
		case strings.HasPrefix(line, "data:") && event == "status":
			var ev struct {
				Status string `json:"status"`
			}
			if err := json.Unmarshal([]byte(strings.TrimSpace(line[len("data:"):])), &ev); err != nil {
				return "", time.Time{}, fmt.Errorf("events of job %s: %w", id, err)
			}
			switch ev.Status {
			case "done", "cancelled", "failed":
				return ev.Status, time.Now(), nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", time.Time{}, fmt.Errorf("events of job %s: %w", id, err)
	}
	return "", time.Time{}, fmt.Errorf("events of job %s: the stream ended before the job", id)
}

func pct(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return float64(s[int(p*float64(len(s)-1))].Microseconds()) / 1000
}

func main() {
	base := flag.String("url", "http://127.0.0.1:8080", "the server's base URL")
	n := flag.Int("n", 300, "requests (or jobs)")
	c := flag.Int("c", 1, "concurrency")
	warm := flag.Int("warmup", 20, "requests sent first and not counted")
	body := flag.String("body", `{"command":["/bin/true"]}`, "JSON body of /v1/run")
	mode := flag.String("mode", "sync", "sync, jobs or jobs-sse")
	verbose := flag.Bool("v", false, "print the p50 of each leg of a job, and the first error, to stderr")
	flag.Parse()
	if *n < 1 || *c < 1 {
		fmt.Fprintln(os.Stderr, "jobload: -n and -c must be at least 1")
		os.Exit(2)
	}
	l := &loader{base: strings.TrimRight(*base, "/"), body: []byte(*body),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * *c}, Timeout: time.Minute}}
	var one func() sample
	switch *mode {
	case "sync":
		one = l.sync
	case "jobs":
		one = l.job
	case "jobs-sse":
		one, l.sse, l.atEvent = l.job, true, true
	default:
		fmt.Fprintf(os.Stderr, "jobload: unknown -mode %q (sync, jobs or jobs-sse)\n", *mode)
		os.Exit(2)
	}
	for range *warm {
		one()
	}

	var (
		mu      sync.Mutex
		samples = make([]sample, 0, *n)
		wg      sync.WaitGroup
	)
	work := make(chan struct{})
	start := time.Now()
	for range *c {
		wg.Go(func() {
			for range work {
				s := one()
				mu.Lock()
				samples = append(samples, s)
				mu.Unlock()
			}
		})
	}
	for range *n {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)

	var lat, over []time.Duration
	legs := make([][]time.Duration, len(legNames))
	bad := 0
	var firstErr error
	for _, s := range samples {
		lat = append(lat, s.lat)
		if s.err != nil {
			bad++
			if firstErr == nil {
				firstErr = s.err
			}
			continue
		}
		over = append(over, s.overhead)
		for i, d := range s.legs {
			legs[i] = append(legs[i], d)
		}
	}
	line := fmt.Sprintf("%.2f %.2f %.0f %d", pct(lat, 0.5), pct(lat, 0.99), float64(*n)/elapsed.Seconds(), bad)
	if *mode != "sync" {
		line += fmt.Sprintf(" %.2f", pct(over, 0.5))
	}
	fmt.Println(line)
	if *verbose {
		if *mode != "sync" {
			for i, name := range legNames {
				fmt.Fprintf(os.Stderr, "%-20s p50 %7.2f ms  p99 %7.2f ms\n", name, pct(legs[i], 0.5), pct(legs[i], 0.99))
			}
		}
		if firstErr != nil {
			fmt.Fprintln(os.Stderr, "first error:", firstErr)
		}
	}
	if bad > 0 {
		os.Exit(1)
	}
}
