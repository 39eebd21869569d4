// Command p50tab reads `go test -bench` output (several -count runs) on
// stdin and prints a Markdown table of each benchmark's median per
// operation: its p50 metric (p50-ns or p50-ms, reported by benchmarks that
// time each operation) when it has one, else ns/op; and the ratio to the
// baseline named by -base (a benchmark name prefix), measured in the same
// run.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

var (
	line   = regexp.MustCompile(`^Benchmark([\w/.=-]+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(.*)$`)
	metric = regexp.MustCompile(`([\d.]+) p50-(ns|ms)`)
)

func median(xs []float64) float64 {
	sort.Float64s(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

func main() {
	base := flag.String("base", "BareExec", "name prefix of the baseline benchmark")
	flag.Parse()
	samples := map[string][]float64{} // ms
	var order []string
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		ms, _ := strconv.ParseFloat(m[2], 64)
		ms /= 1e6
		if p := metric.FindStringSubmatch(m[3]); p != nil {
			ms, _ = strconv.ParseFloat(p[1], 64)
			if p[2] == "ns" {
				ms /= 1e6
			}
		}
		if _, seen := samples[m[1]]; !seen {
			order = append(order, m[1])
		}
		samples[m[1]] = append(samples[m[1]], ms)
	}
	if len(order) == 0 {
		fmt.Fprintln(os.Stderr, "p50tab: no benchmark lines on stdin")
		os.Exit(1)
	}
	var b float64
	for _, k := range order {
		if strings.HasPrefix(k, *base) {
			b = median(samples[k])
			break
		}
	}
	fmt.Printf("| what | p50 | over %s | × %s |\n|---|---|---|---|\n", *base, *base)
	for _, k := range order {
		ms := median(samples[k])
		over, ratio := "—", "—"
		if b > 0 && !strings.HasPrefix(k, *base) {
			over, ratio = fmt.Sprintf("+%.2f ms", ms-b), fmt.Sprintf("%.1f×", ms/b)
		}
		fmt.Printf("| %s | %.2f ms | %s | %s |\n", k, ms, over, ratio)
	}
}
