package jail_test

import (
	"os/exec"
	"runtime"
	"testing"

	"github.com/runbox-dev/runbox/internal/jail"
)

// The jail's own cost per run, from a long-lived process, next to a bare
// os/exec of the same program. bench/jail.sh runs these and prints the
// table with ratios; a benchmark never asserts a time.
var benchPrograms = map[string][]string{
	"true":        {"/bin/true"},
	"python-pass": {"/usr/bin/python3", "-c", "pass"},
}

func BenchmarkBareExec(b *testing.B) {
	for name, argv := range benchPrograms {
		b.Run(name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := exec.Command(argv[0], argv[1:]...).Run(); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
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
}

func benchJail(b *testing.B, j *jail.Jail) {
	for name, argv := range benchPrograms {
		b.Run(name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					res, err := j.Run(b.Context(), jail.Spec{Argv: argv})
					if err != nil || res.Status != jail.StatusOK {
						b.Fatalf("%v %s %s", err, res.Status, res.Message)
					}
				}
			})
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
