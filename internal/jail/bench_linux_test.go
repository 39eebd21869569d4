package jail_test

import (
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/jail"
)

// The jail's own cost per run, from a long-lived process, next to a bare
// os/exec of the same program. bench/jail.sh runs these and prints the
// table with ratios; a benchmark never asserts a time.
var benchPrograms = map[string][]string{
	"true":        {"/bin/true"},
	"python-pass": {"/usr/bin/python3", "-c", "pass"},
}

// machineCPU is the machine's busy CPU time so far (every CPU, user and
// kernel, from /proc/stat): its change over a benchmark, divided by the runs,
// is what each run costs the machine, every process involved included.
func machineCPU(b *testing.B) time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	first, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(first) // cpu user nice system idle iowait irq softirq steal …
	var busy int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i != 3 && i != 4 && i < 8 { // not idle, not iowait; not guest (counted in user)
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / 100 // USER_HZ
}

// reportCPU runs f and reports the machine's CPU per run as cpu-ms/op.
func reportCPU(b *testing.B, f func()) {
	before := machineCPU(b)
	f()
	b.ReportMetric(float64(machineCPU(b)-before)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// p50 collects the time of every operation of a parallel benchmark and
// reports their median as p50-ns.
type p50 struct {
	mu    sync.Mutex
	times []time.Duration
}

// time runs f and records how long it took.
func (p *p50) time(f func()) {
	start := time.Now()
	f()
	d := time.Since(start)
	p.mu.Lock()
	p.times = append(p.times, d)
	p.mu.Unlock()
}

func (p *p50) report(b *testing.B) {
	slices.Sort(p.times)
	if len(p.times) > 0 {
		b.ReportMetric(float64(p.times[len(p.times)/2].Nanoseconds()), "p50-ns")
	}
}

func BenchmarkBareExec(b *testing.B) {
	for name, argv := range benchPrograms {
		b.Run(name, func(b *testing.B) { benchExec(b, argv) })
	}
}

// bwrapArgs is the reference jail of bench/cli.sh: Debian's bubblewrap with
// every namespace and its own /proc, /dev and /tmp, and no cgroup limits.
var bwrapArgs = []string{"--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"}

// BenchmarkBwrapExec runs the programs in bubblewrap, the baseline for a
// box's cost: what a small C jail with fresh namespaces costs the machine.
func BenchmarkBwrapExec(b *testing.B) {
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		b.Skip("bwrap is not installed (apt-get install bubblewrap)")
	}
	for name, argv := range benchPrograms {
		b.Run(name, func(b *testing.B) { benchExec(b, append(append([]string{bwrap}, bwrapArgs...), argv...)) })
	}
}

func benchExec(b *testing.B, argv []string) {
	var lat p50
	reportCPU(b, func() {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				lat.time(func() {
					if err := exec.Command(argv[0], argv[1:]...).Run(); err != nil {
						b.Fatal(err)
					}
				})
			}
		})
	})
	lat.report(b)
}

// BenchmarkJail runs every box started on demand (as the one-shot CLI does).
func BenchmarkJail(b *testing.B) {
	if testJail == nil {
		b.Skip(skipReason)
	}
	benchJail(b, testJail)
}

// BenchmarkJailPool keeps two warm boxes ready, as a long-lived server does.
func BenchmarkJailPool(b *testing.B) {
	if testJail == nil {
		b.Skip(skipReason)
	}
	cfg := testConfig
	cfg.Pool = 2
	j, err := jail.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	benchJail(b, j)
	// One run at a time with a pause between runs (not timed) long
	// enough for the pool to refill: the latency of a request that finds
	// a warm box and an idle machine, the request path alone.
	b.Run("pause-30ms/true", func(b *testing.B) {
		var lat p50
		for b.Loop() {
			b.StopTimer()
			time.Sleep(30 * time.Millisecond)
			b.StartTimer()
			lat.time(func() {
				res, err := j.Run(b.Context(), jail.Spec{Argv: benchPrograms["true"]})
				if err != nil || res.Status != jail.StatusOK {
					b.Fatalf("%v %s %s", err, res.Status, res.Message)
				}
			})
		}
		lat.report(b)
	})
}

func benchJail(b *testing.B, j *jail.Jail) {
	for name, argv := range benchPrograms {
		b.Run(name, func(b *testing.B) {
			var lat p50
			reportCPU(b, func() {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						lat.time(func() {
							res, err := j.Run(b.Context(), jail.Spec{Argv: argv})
							if err != nil || res.Status != jail.StatusOK {
								b.Fatalf("%v %s %s", err, res.Status, res.Message)
							}
						})
					}
				})
			})
			lat.report(b)
		})
	}
}

// BenchmarkJailBigSupervisor runs boxes from a supervisor with 256 MiB of
// heap in use, as a busy server has: box cost must not grow with it (boxes
// are cloned by the small spawner, not forked from the supervisor).
func BenchmarkJailBigSupervisor(b *testing.B) {
	if testJail == nil {
		b.Skip(skipReason)
	}
	ballast := make([]byte, 256<<20)
	for i := 0; i < len(ballast); i += 4096 {
		ballast[i] = 1
	}
	b.Run("true", func(b *testing.B) {
		for b.Loop() {
			res, err := testJail.Run(b.Context(), jail.Spec{Argv: benchPrograms["true"]})
			if err != nil || res.Status != jail.StatusOK {
				b.Fatalf("%v %s %s", err, res.Status, res.Message)
			}
		}
	})
	runtime.KeepAlive(ballast)
}

// BenchmarkSessionExec runs /bin/true as a command in a live session (no
// namespace, mount or box set-up: a fork, the command's cgroup, an exec),
// next to BareExec. It reports the median per command as p50-ns.
func BenchmarkSessionExec(b *testing.B) {
	if testJail == nil {
		b.Skip(skipReason)
	}
	s, err := testJail.OpenSession(b.Context(), jail.SessionSpec{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	// Back to back, and with a pause between commands (not timed) as a
	// client that reads each result before the next command has: the
	// session then makes the next command's first stage in the pause.
	for _, pause := range []time.Duration{0, 10 * time.Millisecond} {
		name := "true"
		if pause > 0 {
			name += "/pause-" + pause.String()
		}
		b.Run(name, func(b *testing.B) { benchSession(b, s, pause) })
	}
}

func benchSession(b *testing.B, s *jail.Session, pause time.Duration) {
	var lat p50
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if pause > 0 {
				b.StopTimer()
				time.Sleep(pause)
				b.StartTimer()
			}
			lat.time(func() {
				res, err := s.Exec(b.Context(), jail.CommandSpec{Argv: benchPrograms["true"]})
				if err != nil || res.Status != jail.StatusOK {
					b.Fatalf("%v %s %s", err, res.Status, res.Message)
				}
			})
		}
	})
	lat.report(b)
}
