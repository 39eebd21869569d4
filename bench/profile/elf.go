package main

import (
	"bytes"
	"cmp"
	"debug/elf"
	"errors"
	"fmt"
	"slices"
)

// textCheck says how binaries a and b lay out their code the same way, or
// returns an error if they do not. Identical .text bytes is the strong
// answer (runbox-init built with and without -s: stripping drops only the
// symbol table). Builds that differ in what they record about paths (with
// and without -trimpath) move data, so the code's references to it differ,
// but every function stays where it was: then the function symbols of both
// must agree, address and size.
func textCheck(a, b string) (string, error) {
	ta, err := readText(a)
	if err != nil {
		return "", err
	}
	tb, err := readText(b)
	if err != nil {
		return "", err
	}
	if ta.addr != tb.addr || len(ta.data) != len(tb.data) {
		return "", fmt.Errorf(".text differs: %s at %#x, %d bytes; %s at %#x, %d bytes",
			a, ta.addr, len(ta.data), b, tb.addr, len(tb.data))
	}
	if bytes.Equal(ta.data, tb.data) {
		return fmt.Sprintf("identical .text (%#x, %d bytes)", ta.addr, len(ta.data)), nil
	}
	if ta.funcs == nil || tb.funcs == nil {
		return "", fmt.Errorf(".text of %s and %s differs and one has no symbols to compare", a, b)
	}
	if !slices.Equal(ta.funcs, tb.funcs) {
		return "", fmt.Errorf(".text of %s and %s differs and so do their function symbols", a, b)
	}
	return fmt.Sprintf(".text at the same place (%#x, %d bytes) with the same %d functions; bytes differ only in references to data",
		ta.addr, len(ta.data), len(ta.funcs)), nil
}

type text struct {
	addr  uint64
	data  []byte
	funcs []funcSym // sorted; nil when the binary is stripped
}

type funcSym struct {
	name       string
	addr, size uint64
}

func readText(path string) (*text, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := f.Section(".text")
	if s == nil {
		return nil, fmt.Errorf("%s: no .text section", path)
	}
	data, err := s.Data()
	if err != nil {
		return nil, fmt.Errorf("%s: read .text: %w", path, err)
	}
	t := &text{addr: s.Addr, data: data}
	syms, err := f.Symbols()
	if errors.Is(err, elf.ErrNoSymbols) {
		return t, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: symbols: %w", path, err)
	}
	for _, y := range syms {
		if elf.ST_TYPE(y.Info) == elf.STT_FUNC {
			t.funcs = append(t.funcs, funcSym{y.Name, y.Value, y.Size})
		}
	}
	slices.SortFunc(t.funcs, func(x, y funcSym) int {
		return cmp.Or(cmp.Compare(x.addr, y.addr), cmp.Compare(x.name, y.name))
	})
	return t, nil
}

// textDelta is what turns a file offset in path's code into its address:
// perf prints offsets into a file it cannot open (runbox-init runs from a
// memfd), and the executable segment maps offset o at o + Vaddr − Off
// (0x400000 for Go on amd64).
func textDelta(path string) (uint64, error) {
	f, err := elf.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 {
			return p.Vaddr - p.Off, nil
		}
	}
	return 0, fmt.Errorf("%s: no executable segment", path)
}
