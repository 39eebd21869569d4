package main

import (
	"strings"
	"testing"
)

// A perf script excerpt: a box's init forked by the benchmark's spawner,
// which execs the program; someone else's box; a thread of the benchmark.
const script = `jail.test     0/0     PERF_RECORD_COMM: jail.test:100/100
jail.test     0/0     PERF_RECORD_FORK(100:100):(1:1)
jail.test     0/0     PERF_RECORD_FORK(100:101):(100:100)
11     0/0     PERF_RECORD_FORK(110:110):(100:100)
exe  120/120  PERF_RECORD_FORK(120:120):(110:110)
exe  120/120  
	           f413a [unknown] (/memfd:runbox-init (deleted))
	ffffffff81000130 entry_SYSCALL_64_after_hwframe ([kernel.kallsyms])

exe  130/130  PERF_RECORD_FORK(130:130):(120:120)
true  130/130  PERF_RECORD_COMM exec: true:130/130
exe  200/200  PERF_RECORD_FORK(200:200):(7:7)
exe  200/200  
	           f413a [unknown] (/memfd:runbox-init (deleted))

jail.test  100/101  
	          4d475 main.main (/tmp/jail.test)

:-1    -1/-1    
	ffffffff822617a7 _raw_spin_lock ([kernel.kallsyms])
`

func TestParse(t *testing.T) {
	p, err := parse(strings.NewReader(script), 100, 999, "true")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		owner owner
		comm  string
		n     int
	}{{ownerBench, "exe", 2}, {ownerOther, "exe", 1}, {ownerBench, "jail.test", 1}, {ownerGone, ":-1", 1}}
	if len(p.samples) != len(want) {
		t.Fatalf("%d samples, want %d", len(p.samples), len(want))
	}
	for i, w := range want {
		s := p.samples[i]
		if s.owner != w.owner || s.comm != w.comm || len(s.frames) != w.n {
			t.Errorf("sample %d: owner %d comm %q %d frames, want %d %q %d", i, s.owner, s.comm, len(s.frames), w.owner, w.comm, w.n)
		}
	}
	if f := p.samples[0].frames[0]; f.addr != 0xf413a || !f.initCode() || f.dso != "/memfd:runbox-init (deleted)" {
		t.Errorf("frame %+v", f)
	}
	if p.execs != 1 {
		t.Errorf("%d execs of the program, want 1", p.execs)
	}
}
