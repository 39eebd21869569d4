package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

// symbols names the runbox-init frames of the benchmark's samples.
type symbols struct {
	delta uint64         // address = file offset + delta
	fn    map[uint64]loc // by file offset, as perf prints it
}

type loc struct {
	fn   string // e.g. github.com/runbox-dev/runbox/internal/jail/boxinit.buildRoot
	file string // file:line
}

// symbolize runs `go tool addr2line` once over every distinct runbox-init
// offset in the benchmark's samples. addr2line names the function that
// holds the code, so code inlined into a caller counts as the caller's.
func symbolize(bin string, samples []sample) (*symbols, error) {
	delta, err := textDelta(bin)
	if err != nil {
		return nil, err
	}
	seen := map[uint64]bool{}
	for _, s := range samples {
		if s.owner != ownerBench {
			continue
		}
		for _, f := range s.frames {
			if f.initCode() {
				seen[f.addr] = true
			}
		}
	}
	offs := make([]uint64, 0, len(seen))
	for o := range seen {
		offs = append(offs, o)
	}
	slices.Sort(offs)
	var in bytes.Buffer
	for _, o := range offs {
		fmt.Fprintf(&in, "%#x\n", o+delta)
	}
	cmd := exec.Command("go", "tool", "addr2line", bin)
	cmd.Stdin = &in
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go tool addr2line %s: %w: %s", bin, err, stderr.String())
	}
	sym := &symbols{delta: delta, fn: make(map[uint64]loc, len(offs))}
	sc := bufio.NewScanner(&out)
	for _, o := range offs {
		var l loc
		if sc.Scan() {
			l.fn = sc.Text()
		}
		if sc.Scan() {
			l.file = sc.Text()
		}
		sym.fn[o] = l
	}
	if len(sym.fn) > 0 && sym.fn[offs[len(offs)-1]].file == "" {
		return nil, fmt.Errorf("go tool addr2line %s: fewer answers than addresses", bin)
	}
	return sym, nil
}

// initFuncs are the Go functions of a sample's runbox-init frames,
// innermost first; other frames (kernel, vDSO) are left out.
func (y *symbols) initFuncs(s sample) []loc {
	var fns []loc
	for _, f := range s.frames {
		if f.initCode() {
			fns = append(fns, y.fn[f.addr])
		}
	}
	return fns
}

// check is the evidence that offset + delta is right: a Go program enters
// the kernel only from assembly (internal/runtime/syscall's Syscall6,
// runtime·futex, …), so in samples that entered by a system call the
// innermost runbox-init frame must resolve to a .s file. A wrong delta
// lands in arbitrary Go functions.
func (y *symbols) check(samples []sample, roles []string) (good, total int) {
	for i, s := range samples {
		if roles[i] != roleInit && roles[i] != roleSpawner {
			continue
		}
		k := kernelFrames(s)
		if len(k) == 0 || !strings.HasPrefix(k[len(k)-1], "entry_SYSCALL_64") {
			continue
		}
		fns := y.initFuncs(s)
		if len(fns) == 0 {
			continue
		}
		total++
		file, _, _ := strings.Cut(fns[0].file, ":")
		if strings.HasSuffix(file, ".s") {
			good++
		}
	}
	return good, total
}

// checkMain is the evidence that bin is the binary that ran (the offsets
// of the runtime's assembly, which check relies on, hardly move between
// builds; boxinit's functions do): the init's and the spawner's own code
// runs on the main goroutine, so nearly every sample with a boxinit frame
// must have boxinit.Main among its callers. Names from another build fall
// in arbitrary functions and break the chain.
func (y *symbols) checkMain(samples []sample, roles []string) (under, with int) {
	for i, s := range samples {
		if roles[i] != roleInit && roles[i] != roleSpawner {
			continue
		}
		has, main := false, false
		for _, l := range y.initFuncs(s) {
			if n, ok := boxinitName(l.fn); ok {
				has = true
				main = main || n == "Main"
			}
		}
		if has {
			with++
			if main {
				under++
			}
		}
	}
	return under, with
}

// short drops the import path: "boxinit.buildRoot", "unix.Mount".
func short(fn string) string {
	if i := strings.LastIndexByte(fn, '/'); i >= 0 {
		fn = fn[i+1:]
	}
	return fn
}

// boxinitName is fn's name within package boxinit ("buildRoot",
// "spawn.func1", "(*server).handle"), if it is one of its functions.
func boxinitName(fn string) (string, bool) {
	return strings.CutPrefix(short(fn), "boxinit.")
}
