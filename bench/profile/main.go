// Command profile turns a whole-machine `perf record -a -g` of the jail's
// benchmark into a table of where each millisecond of a box goes: by
// process role (the box's init, the spawner that clones it, the supervisor,
// the program, kernel threads), within the init and the spawner by phase
// (the runbox-init function a sample is under), and by kernel entry
// (mount, page faults, clone, execve, exit, …). bench/profile.sh runs it;
// it has two modes:
//
//	profile textcheck A B
//
// exits non-zero unless the two runbox-init binaries lay out their code the
// same way (same .text address and size, and the same bytes or else the
// same function symbols), so that one's symbols name the other's samples.
//
//	profile report -script perf.script -bin runbox-init-sym -bench-pid P -perf-pid Q -cpu-ms X
//
// reads `perf script -F comm,pid,tid,ip,sym,dso --show-task-events`
// output, symbolizes the samples taken in runbox-init (perf sees it as
// "/memfd:runbox-init (deleted)" and prints file offsets) with
// `go tool addr2line` on the unstripped binary, and prints Markdown.
//
// Samples are attributed by process ancestry, from perf's fork events: only
// descendants of the benchmark's pid are the benchmark's, so another
// runbox on the same machine lands in "other processes", not in the box's
// rows. Each row's share is of the busy samples (idle excluded); its
// milliseconds per box are that share of the benchmark's own cpu-ms/op (the
// whole machine's busy CPU per box over its timed run, from /proc/stat),
// which is why other processes and kernel threads have rows too.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "textcheck":
		if len(os.Args) != 4 {
			usage()
		}
		var how string
		how, err = textCheck(os.Args[2], os.Args[3])
		if err == nil {
			fmt.Printf("%s and %s: %s\n", os.Args[2], os.Args[3], how)
		}
	case "report":
		err = report(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: profile textcheck A B | profile report -script FILE -bin FILE -bench-pid PID -perf-pid PID -cpu-ms X [flags]")
	os.Exit(2)
}

// options are report's flags.
type options struct {
	script   string
	bin      string
	benchPID int
	perfPID  int
	cpuMS    float64
	periodMS float64
	window   float64
	program  string
	minShare float64
	stacks   string
}

func report(args []string) error {
	var o options
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	fs.StringVar(&o.script, "script", "", "perf script output (-F comm,pid,tid,ip,sym,dso --show-task-events)")
	fs.StringVar(&o.bin, "bin", "", "unstripped runbox-init with the same code layout as the one profiled")
	fs.IntVar(&o.benchPID, "bench-pid", 0, "pid of the benchmark process (the supervisor)")
	fs.IntVar(&o.perfPID, "perf-pid", 0, "pid of perf record")
	fs.Float64Var(&o.cpuMS, "cpu-ms", 0, "the benchmark's cpu-ms/op: the machine's busy CPU per box")
	fs.Float64Var(&o.periodMS, "period-ms", 0.5, "CPU time per sample (perf record -e cpu-clock -c), ms")
	fs.Float64Var(&o.window, "window", 0, "length of the profile window, s (for the header only)")
	fs.StringVar(&o.program, "program", "true", "comm of the program each box runs")
	fs.Float64Var(&o.minShare, "min-share", 0.3, "rows under this % of busy samples are folded into 'other'")
	fs.StringVar(&o.stacks, "stacks", "", "instead of the tables, print the commonest stacks of the rows whose name contains this")
	fs.Parse(args)
	if o.script == "" || o.bin == "" || o.benchPID <= 0 || o.perfPID <= 0 || o.cpuMS <= 0 {
		usage()
	}
	f, err := os.Open(o.script)
	if err != nil {
		return err
	}
	defer f.Close()
	p, err := parse(f, o.benchPID, o.perfPID, o.program)
	if err != nil {
		return fmt.Errorf("read %s: %w", o.script, err)
	}
	sym, err := symbolize(o.bin, p.samples)
	if err != nil {
		return err
	}
	return write(os.Stdout, o, p, sym)
}
