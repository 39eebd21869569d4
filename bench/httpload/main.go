// Command httpload sends N identical POST requests to a runbox server at a
// given concurrency and prints one line: p50 and p99 latency in ms,
// requests per second, and how many answers were not 200 with status ok.
//
//	httpload -url http://127.0.0.1:8080/v1/run -n 500 -c 4 -body '{"command":["/bin/true"]}'
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080/v1/run", "endpoint")
	n := flag.Int("n", 300, "requests")
	c := flag.Int("c", 1, "concurrency")
	warm := flag.Int("warmup", 20, "requests sent first and not counted")
	body := flag.String("body", `{"command":["/bin/true"]}`, "JSON body")
	flag.Parse()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *c}, Timeout: time.Minute}
	one := func() (time.Duration, bool) {
		start := time.Now()
		resp, err := client.Post(*url, "application/json", bytes.NewReader([]byte(*body)))
		if err != nil {
			return time.Since(start), false
		}
		var out struct {
			Run *struct {
				Status string `json:"status"`
			} `json:"run"`
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		return d, resp.StatusCode == 200 && json.Unmarshal(b, &out) == nil && out.Run != nil && out.Run.Status == "ok"
	}
	for i := 0; i < *warm; i++ {
		one()
	}
	lat := make([]time.Duration, 0, *n)
	var mu sync.Mutex
	bad := 0
	work := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < *c; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				d, ok := one()
				mu.Lock()
				lat = append(lat, d)
				if !ok {
					bad++
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < *n; i++ {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	fmt.Printf("%.2f %.2f %.0f %d\n", pct(0.5), pct(0.99), float64(*n)/elapsed.Seconds(), bad)
	if bad > 0 {
		os.Exit(1)
	}
}
