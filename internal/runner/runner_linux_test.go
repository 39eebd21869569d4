package runner

import (
	"context"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/boxtest"
	"github.com/runbox-dev/runbox/internal/env"
	"github.com/runbox-dev/runbox/internal/jail"
)

var (
	testEnv    *boxtest.Env
	skipReason string
)

func TestMain(m *testing.M) {
	os.Exit(boxtest.Main(m, func(be *boxtest.Env, reason string) error {
		testEnv, skipReason = be, reason
		return nil
	}))
}

// countingJail counts the boxes a runner starts.
type countingJail struct {
	Jail
	boxes atomic.Int64
}

func (c *countingJail) Run(ctx context.Context, s jail.Spec) (jail.Result, error) {
	c.boxes.Add(1)
	return c.Jail.Run(ctx, s)
}

func newRunner(t *testing.T) (*Runner, *countingJail) {
	t.Helper()
	if testEnv == nil {
		t.Skip(skipReason)
	}
	reg, err := env.Load(env.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	cj := &countingJail{Jail: testEnv.Jail}
	reg.Detect(t.Context(), VersionRunner(testEnv.Jail))
	return New(cj, reg, NewCache(64<<20, time.Hour)), cj
}

func TestConformance(t *testing.T) {
	r, _ := newRunner(t)
	for _, e := range r.envs.List() {
		t.Run(e.Name, func(t *testing.T) {
			if !e.Available {
				if os.Getenv("CI") != "" {
					// .ci/run installs every toolchain: a missing one is a
					// broken install step, not a skip.
					t.Fatalf("CI installs every environment's toolchain, and %s is unavailable: %s", e.Name, e.Reason)
				}
				t.Skipf("requires the %s toolchain: %s", e.Name, e.Reason)
			}
			resp, err := r.Run(t.Context(), ConformanceRequest(e))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Compile != nil && resp.Compile.Status != jail.StatusOK {
				t.Fatalf("compile: %s %s\n%s%s", resp.Compile.Status, resp.Compile.Message, resp.Compile.Stdout, resp.Compile.Stderr)
			}
			if resp.Run == nil || string(resp.Run.Stdout) != "OK\n" {
				t.Fatalf("run: %+v\nstdout %q\nstderr %q", resp.Run.Status, resp.Run.Stdout, resp.Run.Stderr)
			}
			if resp.Version == "" {
				t.Error("no version")
			}
		})
	}
}

func TestCompileErrorStopsBeforeTheRun(t *testing.T) {
	r, cj := newRunner(t)
	resp, err := r.Run(t.Context(), Request{Language: "c", Files: []File{{Name: "main.c", Content: []byte("int main( {")}}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Compile == nil || resp.Compile.Status == jail.StatusOK || !strings.Contains(string(resp.Compile.Stderr), "error") {
		t.Fatalf("compile %+v", resp.Compile)
	}
	if resp.Run != nil || cj.boxes.Load() != 1 {
		t.Fatalf("ran after a failed compile (%d boxes)", cj.boxes.Load())
	}
}

func TestCasesAndVerdicts(t *testing.T) {
	r, cj := newRunner(t)
	exp := func(s string) *string { return &s }
	src := "#include <stdio.h>\nint main(){long x; if(scanf(\"%ld\",&x)!=1) return 3; if(x<0) for(;;); printf(\"%ld  \\n\\n\", x*2);}"
	resp, err := r.Run(t.Context(), Request{
		Language: "c",
		Files:    []File{{Name: "main.c", Content: []byte(src)}},
		Limits:   jail.Limits{CPUTime: 500 * time.Millisecond, WallTime: 2 * time.Second},
		Cases: []Case{
			{Stdin: []byte("21"), ExpectedOutput: exp("42")},
			{Stdin: []byte("5"), ExpectedOutput: exp("10\n")},
			{Stdin: []byte("5"), ExpectedOutput: exp("11")},
			{Stdin: []byte("-1"), ExpectedOutput: exp("0")},
			{Stdin: []byte("x"), ExpectedOutput: exp("0")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range resp.Cases {
		got = append(got, c.Verdict)
	}
	want := "accepted accepted wrong_answer time_limit runtime_error"
	if strings.Join(got, " ") != want {
		t.Fatalf("verdicts %v, want %s", got, want)
	}
	if n := cj.boxes.Load(); n != 6 {
		t.Fatalf("%d boxes: want one compile and five runs", n)
	}
}

func TestCompileCache(t *testing.T) {
	r, cj := newRunner(t)
	req := Request{Language: "c", Files: []File{{Name: "main.c", Content: []byte("int main(){return 0;}")}}}
	first, err := r.Run(t.Context(), req)
	if err != nil || first.Cached {
		t.Fatalf("first: cached %v, %v", first.Cached, err)
	}
	second, err := r.Run(t.Context(), req)
	if err != nil || !second.Cached || second.Run.Status != jail.StatusOK {
		t.Fatalf("second: cached %v, %v", second.Cached, err)
	}
	if n := cj.boxes.Load(); n != 3 {
		t.Fatalf("%d boxes: want 2 compiles' worth minus the cached one", n)
	}
	// Eight identical new requests at once compile once.
	cj.boxes.Store(0)
	req.Files[0].Content = []byte("int main(){return 0; }")
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.Run(context.Background(), req); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := cj.boxes.Load(); n != 9 {
		t.Fatalf("%d boxes for 8 concurrent identical requests; want 1 compile + 8 runs", n)
	}
}

func TestOutputs(t *testing.T) {
	r, _ := newRunner(t)
	resp, err := r.Run(t.Context(), Request{
		Command: []string{"/bin/sh", "-c", "mkdir out && echo hi > out/x.txt && ln -s /etc/passwd out/link.txt && mkfifo out/fifo.txt && echo no > other.txt"},
		Outputs: []string{"out/*.txt"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range resp.Files {
		names = append(names, f.Name)
	}
	sort.Strings(names)
	if strings.Join(names, " ") != "out/x.txt" || string(resp.Files[0].Content) != "hi\n" {
		t.Fatalf("files %v", names)
	}
}

func TestUnknownAndUnavailable(t *testing.T) {
	r, _ := newRunner(t)
	if _, err := r.Run(t.Context(), Request{Language: "intercal"}); err == nil {
		t.Fatal("unknown language accepted")
	}
}
