// Command benchtab reads `go test -bench` output (several -count runs) on
// stdin and prints a Markdown table: the median time per run of each
// benchmark, and for the jail's benchmarks the overhead and ratio against the
// bare exec of the same program measured in the same run.
//
// Benchmark names are Bench<Kind>/<program>-<workers>; BareExec is the
// baseline. A p50-ns metric (the median time of one run, each timed on its
// own) is the latency the comparison uses, ns/op (wall time per completed
// run) the throughput; a cpu-ms/op metric (the whole machine's busy CPU
// time per run, from /proc/stat: every process involved and the kernel)
// becomes a column of its own. Without p50-ns, ns/op stands in for it.
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

var (
	line = regexp.MustCompile(`^Benchmark(\w+)/([\w./-]+?)(?:-(\d+))?\s+\d+\s+([\d.]+) ns/op`)
	cpu  = regexp.MustCompile(`\s([\d.]+) cpu-ms/op`)
	p50  = regexp.MustCompile(`\s([\d.]+) p50-ns`)
)

type key struct{ kind, prog, workers string }

func median(xs []float64) float64 {
	sort.Float64s(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

func main() {
	samples := map[key][]float64{}
	cpus := map[key][]float64{}
	p50s := map[key][]float64{}
	var order []key
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		w := m[3]
		if w == "" {
			w = "1"
		}
		k := key{m[1], m[2], w}
		ns, _ := strconv.ParseFloat(m[4], 64)
		if _, seen := samples[k]; !seen {
			order = append(order, k)
		}
		samples[k] = append(samples[k], ns)
		if c := cpu.FindStringSubmatch(sc.Text()); c != nil {
			v, _ := strconv.ParseFloat(c[1], 64)
			cpus[k] = append(cpus[k], v)
		}
		if p := p50.FindStringSubmatch(sc.Text()); p != nil {
			v, _ := strconv.ParseFloat(p[1], 64)
			p50s[k] = append(p50s[k], v)
		}
	}
	if len(order) == 0 {
		fmt.Fprintln(os.Stderr, "benchtab: no benchmark lines on stdin")
		os.Exit(1)
	}
	latency := func(k key) float64 {
		if len(p50s[k]) > 0 {
			return median(p50s[k]) / 1e6
		}
		return median(samples[k]) / 1e6
	}
	fmt.Println("| what | program | workers | p50 per run | runs/s | p50 over bare exec | p50 × bare exec | machine CPU per run |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, k := range order {
		ms := latency(k)
		over, ratio := "—", "—"
		if k.kind != "BareExec" {
			// A variant (pause-30ms/true) compares with its program bare.
			prog := k.prog[strings.LastIndex(k.prog, "/")+1:]
			if _, ok := samples[key{"BareExec", prog, k.workers}]; ok {
				b := latency(key{"BareExec", prog, k.workers})
				over = fmt.Sprintf("%+.2f ms", ms-b)
				ratio = fmt.Sprintf("%.2f×", ms/b)
			}
		}
		// With N parallel workers, ns/op is wall time per completed run.
		perSec := fmt.Sprintf("%.0f", 1e9/median(samples[k]))
		if strings.HasPrefix(k.prog, "pause") {
			perSec = "—" // runs one at a time with pauses: not a throughput
		}
		c := "—"
		if len(cpus[k]) > 0 {
			c = fmt.Sprintf("%.2f ms", median(cpus[k]))
		}
		fmt.Printf("| %s | %s | %s | %.2f ms | %s | %s | %s | %s |\n", k.kind, k.prog, k.workers, ms, perSec, over, ratio, c)
	}
}
