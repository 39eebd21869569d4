package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
)

// The functions whose callees get rows of their own: buildRoot's steps
// (maskProc, the overlays, the tmpfs mounts) and spawn's (the device
// nodes, the clone and exec of init, the id maps).
var (
	expandInit    = map[string]bool{"buildRoot": true}
	expandSpawner = map[string]bool{"spawn": true}
)

// benchRoles are the kernel-entry table's columns.
var benchRoles = []string{roleInit, roleSpawner, roleSupervisor, roleProgram}

// minSymbolCheck is the share of system-call samples whose innermost
// runbox-init frame must be Go assembly for the symbols to be trusted.
const minSymbolCheck = 0.9

func write(w io.Writer, o options, p *parsed, y *symbols) error {
	n := len(p.samples)
	roles := make([]string, n)
	subs := make([]string, n) // the row within the role: a phase, a kernel thread's kind, a comm
	entries := make([]string, n)
	idleN := 0
	for i, s := range p.samples {
		roles[i] = roleOf(s, o.benchPID, o.program)
		if roles[i] == roleIdle {
			idleN++
			continue
		}
		entries[i] = kernelEntry(kernelFrames(s))
		switch roles[i] {
		case roleInit:
			subs[i] = phaseOf(funcNames(y.initFuncs(s)), "run", expandInit, entries[i])
		case roleSpawner:
			subs[i] = phaseOf(funcNames(y.initFuncs(s)), "spawnerMain", expandSpawner, entries[i])
		case roleKernel:
			subs[i] = kernelGroup(s.comm)
		case roleOther, roleBenchOther:
			subs[i] = "`" + s.comm + "`"
			if strings.HasPrefix(s.comm, ":") {
				subs[i] = "exiting tasks whose name perf lost"
			}
		}
	}
	busy := n - idleN
	if busy == 0 {
		return fmt.Errorf("every sample is idle: was the benchmark running?")
	}
	under, with := y.checkMain(p.samples, roles)
	if with == 0 || float64(under) < minSymbolCheck*float64(with) {
		return fmt.Errorf("symbols do not fit: only %d of %d runbox-init samples with a boxinit frame are under boxinit.Main; is %s the binary that ran?", under, with, o.bin)
	}
	good, total := y.check(p.samples, roles)
	if total == 0 {
		return fmt.Errorf("no runbox-init sample entered the kernel by a system call: nothing to check the symbols against (was the benchmark running?)")
	}
	if float64(good) < minSymbolCheck*float64(total) {
		return fmt.Errorf("symbols do not fit: only %d of %d system-call samples in runbox-init end in Go assembly at offset + %#x; is %s the binary that ran?", good, total, y.delta, o.bin)
	}

	if o.stacks != "" {
		return writeStacks(w, o, p, y, roles, subs)
	}

	share := func(c int) float64 { return 100 * float64(c) / float64(busy) }
	ms := func(c int) float64 { return o.cpuMS * float64(c) / float64(busy) }
	roleCount := map[string]int{}
	subCount := map[string]map[string]int{}
	entryCount := map[string]map[string]int{}
	for i, r := range roles {
		if r == roleIdle {
			continue
		}
		roleCount[r]++
		if subs[i] != "" {
			if subCount[r] == nil {
				subCount[r] = map[string]int{}
			}
			subCount[r][subs[i]]++
		}
		if slices.Contains(benchRoles, r) {
			if entryCount[entries[i]] == nil {
				entryCount[entries[i]] = map[string]int{}
			}
			entryCount[entries[i]][r]++
		}
	}
	benchN := 0
	for _, r := range []string{roleInit, roleSpawner, roleSupervisor, roleProgram, roleBenchOther} {
		benchN += roleCount[r]
	}
	label := func(r string) string {
		if r == roleProgram {
			return "program (`" + o.program + "`)"
		}
		return r
	}
	column := map[string]string{roleInit: "box init", roleSpawner: "spawner", roleSupervisor: "supervisor",
		roleProgram: "program (`" + o.program + "`)"}

	fmt.Fprintf(w, "Where a box's CPU goes: the jail's benchmark JailPool/%s (a pool of 2 warm boxes, 2 workers), profiled with `perf record -a -g` for %.0f s.\n\n", o.program, o.window)
	fmt.Fprintf(w, "- %d samples, one per %.2f ms of CPU (cpu-clock) on every CPU; %d idle, left out; %d busy (%.0f ms of CPU), %.1f%% of them the benchmark's own processes.\n",
		n, o.periodMS, idleN, busy, float64(busy)*o.periodMS, share(benchN))
	fmt.Fprintf(w, "- ms per box = a row's share of the busy samples × the benchmark's own cpu-ms/op, %.2f ms: the machine's busy CPU (every process and the kernel, from /proc/stat) per box over its whole timed run, of which the window is a part.\n", o.cpuMS)
	if p.execs > 0 {
		fmt.Fprintf(w, "- Cross-check: the benchmark's boxes started `%s` %d times in the window, so the busy CPU was %.2f ms per box (%.2f ms in the benchmark's own processes).\n",
			o.program, p.execs, float64(busy)*o.periodMS/float64(p.execs), float64(benchN)*o.periodMS/float64(p.execs))
	}
	fmt.Fprintf(w, "- Phases of the init and the spawner: the outermost runbox-init function under run (spawnerMain), one level deeper under buildRoot (spawn); \"Go runtime: X\" has no runbox-init function, X being where its stack starts (rt0_go: the runtime starting, before main; mstart: a new thread, or the scheduler on a thread's own stack; mcall: the scheduler switching goroutines; runtime.main: package initialisation; morestack: stack growth); \"no user stack\" is kernel work after execve replaced the memory or exit freed it.\n")
	fmt.Fprintf(w, "- runbox-init frames: file offset + %#x, named by `go tool addr2line` (code inlined into a caller counts as the caller's); checks: %d of %d (%.1f%%) samples that entered the kernel by a system call from runbox-init have Go assembly as the innermost frame, as every Go system call does; %d of %d (%.1f%%) with a boxinit function have boxinit.Main among their callers.\n\n",
		y.delta, good, total, 100*float64(good)/float64(total), under, with, 100*float64(under)/float64(with))

	fmt.Fprintln(w, "| where | share of busy CPU | ms per box |")
	fmt.Fprintln(w, "|---|---:|---:|")
	for _, r := range roleOrder {
		c := roleCount[r]
		if c == 0 {
			continue
		}
		fmt.Fprintf(w, "| **%s** | %.1f%% | %.2f |\n", label(r), share(c), ms(c))
		rows, folded, foldedN := top(subCount[r], func(c int) bool { return share(c) >= o.minShare })
		for _, row := range rows {
			fmt.Fprintf(w, "| ↳ %s | %.1f%% | %.2f |\n", row.name, share(row.n), ms(row.n))
		}
		if folded > 0 {
			fmt.Fprintf(w, "| ↳ other (%d rows under %.1f%%) | %.1f%% | %.2f |\n", folded, o.minShare, share(foldedN), ms(foldedN))
		}
	}
	fmt.Fprintf(w, "| **all busy CPU** | 100%% | %.2f |\n\n", o.cpuMS)

	fmt.Fprintln(w, "The benchmark's processes by how they entered the kernel (each cell: share of all busy CPU · ms per box; these rows split the samples of the table above again):")
	fmt.Fprintln(w)
	fmt.Fprint(w, "| kernel entry |")
	for _, r := range benchRoles {
		fmt.Fprintf(w, " %s |", column[r])
	}
	fmt.Fprint(w, "\n|---|")
	fmt.Fprintln(w, strings.Repeat("---:|", len(benchRoles)))
	totals := map[string]int{}
	for e, byRole := range entryCount {
		for _, c := range byRole {
			totals[e] += c
		}
	}
	rows, folded, _ := top(totals, func(c int) bool { return share(c) >= o.minShare })
	cell := func(c int) string { return fmt.Sprintf("%.1f%% · %.2f", share(c), ms(c)) }
	for _, row := range rows {
		fmt.Fprintf(w, "| %s |", row.name)
		for _, r := range benchRoles {
			fmt.Fprintf(w, " %s |", cell(entryCount[row.name][r]))
		}
		fmt.Fprintln(w)
	}
	if folded > 0 {
		fmt.Fprintf(w, "| other (%d entries under %.1f%%) |", folded, o.minShare)
		for _, r := range benchRoles {
			c := 0
			for e, byRole := range entryCount {
				if !slices.ContainsFunc(rows, func(x row) bool { return x.name == e }) {
					c += byRole[r]
				}
			}
			fmt.Fprintf(w, " %s |", cell(c))
		}
		fmt.Fprintln(w)
	}
	return nil
}

type row struct {
	name string
	n    int
}

// top sorts counts, largest first, and keeps those keep accepts; it
// returns how many it folded and their total.
func top(counts map[string]int, keep func(int) bool) (rows []row, folded, foldedN int) {
	for name, c := range counts {
		if keep(c) {
			rows = append(rows, row{name, c})
		} else {
			folded++
			foldedN += c
		}
	}
	slices.SortFunc(rows, func(a, b row) int { return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.name, b.name)) })
	return rows, folded, foldedN
}

func funcNames(ls []loc) []string {
	fns := make([]string, len(ls))
	for i, l := range ls {
		fns[i] = l.fn
	}
	return fns
}

// writeStacks prints the 20 commonest whole stacks (outermost first) of the
// samples whose role or row names contain o.stacks: what a row is made of.
func writeStacks(w io.Writer, o options, p *parsed, y *symbols, roles, subs []string) error {
	counts := map[string]int{}
	n := 0
	for i, s := range p.samples {
		if !strings.Contains(roles[i], o.stacks) && !strings.Contains(subs[i], o.stacks) {
			continue
		}
		n++
		names := make([]string, len(s.frames))
		for j, f := range s.frames {
			switch {
			case f.initCode() && s.owner == ownerBench:
				names[j] = short(y.fn[f.addr].fn)
			case f.sym == "[unknown]":
				names[j] = "[" + short(f.dso) + "]"
			default:
				names[j] = f.sym
			}
		}
		slices.Reverse(names)
		counts[strings.Join(names, ";")]++
	}
	fmt.Fprintf(w, "%d samples in rows matching %q\n", n, o.stacks)
	rows, _, _ := top(counts, func(int) bool { return true })
	for _, r := range rows[:min(20, len(rows))] {
		fmt.Fprintf(w, "%6d %s\n", r.n, r.name)
	}
	return nil
}
