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
	metric = regexp.MustCompile(`([\d.]+) (p50(?:-[a-z]+)*)-(ns|ms)\b`)
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
		rows := map[string]float64{}
		ns, _ := strconv.ParseFloat(m[2], 64)
		rows[m[1]] = ns / 1e6
		// Each p50 metric is a row: p50-ms (or -ns) replaces ns/op,
		// others (p50-write-ms) are rows of their own.
		for _, p := range metric.FindAllStringSubmatch(m[3], -1) {
			v, _ := strconv.ParseFloat(p[1], 64)
			if p[3] == "ns" {
				v /= 1e6
			}
			name := m[1]
			if p[2] != "p50" {
				name += " (" + p[2] + ")"
			}
			rows[name] = v
		}
		names := make([]string, 0, len(rows))
		for name := range rows {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if _, seen := samples[name]; !seen {
				order = append(order, name)
			}
			samples[name] = append(samples[name], rows[name])
		}
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
		// A row of another measure (a write-to-receipt time) has no ratio.
		if b > 0 && !strings.HasPrefix(k, *base) && !strings.Contains(k, "(") {
			over, ratio = fmt.Sprintf("+%.2f ms", ms-b), fmt.Sprintf("%.1f×", ms/b)
		}
		fmt.Printf("| %s | %.2f ms | %s | %s |\n", k, ms, over, ratio)
	}
}
