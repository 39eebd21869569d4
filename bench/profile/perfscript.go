package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// owner says whose a process is, from perf's fork events.
type owner uint8

const (
	ownerOther  owner = iota // not the benchmark's, not perf's, not the kernel's
	ownerBench               // the benchmark process or one of its descendants
	ownerPerf                // perf record and the sleep it times the window with
	ownerKernel              // kthreadd (pid 2) and the kernel threads it starts
	ownerIdle                // pid 0, the idle task (and interrupts taken in it)
	ownerGone                // pid −1: a task perf cannot name any more (it is being reaped)
)

// frame is one line of a callchain as perf prints it.
type frame struct {
	addr uint64 // an address, or a file offset in a file perf cannot open (a memfd)
	sym  string // "[unknown]" when perf has no symbols
	dso  string
}

func (f frame) kernel() bool { return f.dso == "[kernel.kallsyms]" }

// initCode: runbox-init runs from a sealed memfd, which perf cannot open;
// it prints file offsets into "/memfd:runbox-init (deleted)".
func (f frame) initCode() bool { return strings.HasPrefix(f.dso, "/memfd:runbox-init") }

type sample struct {
	owner  owner
	pid    int
	comm   string  // the thread's name; for a task that has exited, its last known one
	frames []frame // innermost first
}

type parsed struct {
	samples []sample
	execs   int // execs of the program by the benchmark's processes in the window
}

var forkRE = regexp.MustCompile(`PERF_RECORD_FORK\((-?\d+):(-?\d+)\):\((-?\d+):(-?\d+)\)`)

// parse reads `perf script -F comm,pid,tid,ip,sym,dso --show-task-events`.
// Fork events, which perf also synthesizes at its start for every task that
// already runs, give each process its parent, hence its owner; they come in
// time order with the samples, so a reused pid is attributed right.
func parse(r io.Reader, benchPID, perfPID int, program string) (*parsed, error) {
	special := map[int]owner{0: ownerIdle, -1: ownerGone, 2: ownerKernel, benchPID: ownerBench, perfPID: ownerPerf}
	owners := map[int]owner{}
	ownerOf := func(pid int) owner {
		if o, ok := special[pid]; ok {
			return o
		}
		return owners[pid] // ownerOther when unknown
	}
	comms := map[int]string{} // by tid
	p := &parsed{}
	var cur *sample
	flush := func() {
		if cur != nil {
			p.samples = append(p.samples, *cur)
			cur = nil
		}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			flush()
		case line[0] == ' ' || line[0] == '\t':
			if cur == nil {
				continue
			}
			f, err := parseFrame(line)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			cur.frames = append(cur.frames, f)
		case strings.Contains(line, "PERF_RECORD_"):
			flush()
			if m := forkRE.FindStringSubmatch(line); m != nil {
				child, tid, parent := atoi(m[1]), atoi(m[2]), atoi(m[3])
				if child == tid { // a new process, not a new thread of one
					owners[child] = ownerOf(parent)
				}
			} else if i := strings.Index(line, "PERF_RECORD_COMM"); i >= 0 {
				rest := line[i+len("PERF_RECORD_COMM"):]
				exec := strings.HasPrefix(rest, " exec:")
				_, rest, _ = strings.Cut(rest, ": ")
				j := strings.LastIndexByte(rest, ':')
				if j < 0 {
					continue
				}
				name := rest[:j]
				pid, tid := pidTID(rest[j+1:])
				comms[tid] = name
				if exec && name == program && ownerOf(pid) == ownerBench {
					p.execs++
				}
			}
		default:
			flush()
			t := strings.TrimRight(line, " \t")
			i := strings.LastIndexAny(t, " \t")
			if i < 0 {
				return nil, fmt.Errorf("line %d: not a sample header: %q", n, line)
			}
			pid, tid := pidTID(t[i+1:])
			comm := strings.TrimSpace(t[:i])
			if strings.HasPrefix(comm, ":") {
				if c, ok := comms[tid]; ok {
					comm = c
				}
			} else {
				comms[tid] = comm
			}
			cur = &sample{owner: ownerOf(pid), pid: pid, comm: comm}
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(p.samples) == 0 {
		return nil, fmt.Errorf("no samples")
	}
	return p, nil
}

// parseFrame reads "\t ffffffff813ae493 finish_task_switch.isra.0 ([kernel.kallsyms])".
// The DSO is the last parenthesized group, which may itself hold
// parentheses: "(/memfd:runbox-init (deleted))".
func parseFrame(line string) (frame, error) {
	t := strings.TrimSpace(line)
	a, rest, ok := strings.Cut(t, " ")
	if !ok || !strings.HasSuffix(rest, ")") {
		return frame{}, fmt.Errorf("not a callchain line: %q", line)
	}
	addr, err := strconv.ParseUint(a, 16, 64)
	if err != nil {
		return frame{}, fmt.Errorf("callchain address %q: %w", a, err)
	}
	depth, open := 0, -1
	for i := len(rest) - 1; i >= 0; i-- {
		switch rest[i] {
		case ')':
			depth++
		case '(':
			depth--
		}
		if depth == 0 {
			open = i
			break
		}
	}
	if open < 0 {
		return frame{}, fmt.Errorf("unbalanced DSO in %q", line)
	}
	return frame{addr: addr, sym: strings.TrimSpace(rest[:open]), dso: rest[open+1 : len(rest)-1]}, nil
}

// pidTID reads "9707/9708" (or "-1/-1", or a bare pid).
func pidTID(s string) (pid, tid int) {
	a, b, ok := strings.Cut(s, "/")
	pid = atoi(a)
	if !ok {
		return pid, pid
	}
	return pid, atoi(b)
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
