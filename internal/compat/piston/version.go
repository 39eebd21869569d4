package piston

import (
	"regexp"
	"strconv"
	"strings"
)

// Piston names each runtime's version in SemVer ("3.11.2") and clients
// select one with a SemVer range ("*", "3.x", "3.11.2"). A runbox
// environment carries the first line its version command printed
// ("Python 3.11.2", "gcc (Debian 12.2.0-14+deb12u1) 12.2.0",
// "go version go1.26.8 linux/amd64", "javac 17.0.21.1", "v20.20.2").

var (
	dotted = regexp.MustCompile(`\d+(?:\.\d+)+`)
	number = regexp.MustCompile(`\d+`)
)

// semver is the version Piston clients see for an environment's version
// text. The rule: the first run of dot-separated numbers in the text
// ("3.11.2" in "Python 3.11.2"), or failing that its first number; kept
// to three parts, padded with zeros ("17.0.21.1" → "17.0.21", "go1.26" →
// "1.26.0", "rustc 1" → "1.0.0"), leading zeros dropped. Text without a
// number (an environment that is not available) is "0.0.0".
func semver(text string) string {
	m := dotted.FindString(text)
	if m == "" {
		m = number.FindString(text)
	}
	parts := strings.Split(m, ".")
	out := make([]string, 3)
	for i := range out {
		out[i] = "0"
		if i < len(parts) {
			if n, err := strconv.ParseUint(parts[i], 10, 32); err == nil {
				out[i] = strconv.FormatUint(n, 10)
			}
		}
	}
	return strings.Join(out, ".")
}

// matches reports whether the SemVer version v (as semver makes it)
// satisfies Piston's version selector sel. Supported: "*", "x" or "X"
// (any); a version or a prefix of one, with an optional "v" or "=", each
// part a number or a wildcard ("3", "3.11", "3.x", "3.11.2"); "^" (same
// major, at least), "~" (same major and minor, at least), and the
// comparisons ">=", ">", "<=", "<" with a full or partial version.
// Anything else (ranges with spaces or "||") matches nothing, and the
// request then gets Piston's "runtime is unknown".
func matches(sel, v string) bool {
	sel = strings.TrimSpace(sel)
	have := parse(v)
	if have == nil {
		return false
	}
	op := ""
	for _, p := range []string{">=", "<=", ">", "<", "^", "~", "="} {
		if rest, ok := strings.CutPrefix(sel, p); ok {
			op, sel = p, strings.TrimSpace(rest)
			break
		}
	}
	sel = strings.TrimPrefix(sel, "v")
	if sel == "*" || sel == "x" || sel == "X" {
		return op == "" || op == "="
	}
	want, wild := partial(sel)
	if want == nil {
		return false
	}
	switch op {
	case "", "=":
		for i, n := range want {
			if !wild[i] && have[i] != n {
				return false
			}
		}
		return true
	case "^":
		return have[0] == want[0] && cmp(have, want) >= 0
	case "~":
		if len(want) > 1 && have[1] != want[1] {
			return false
		}
		return have[0] == want[0] && cmp(have, want) >= 0
	case ">=":
		return cmp(have, want) >= 0
	case ">":
		return cmp(have, want) > 0
	case "<=":
		return cmp(have, want) <= 0
	case "<":
		return cmp(have, want) < 0
	}
	return false
}

// parse reads a full version "a.b.c".
func parse(v string) []uint64 {
	p, wild := partial(v)
	if len(p) != 3 || wild[0] || wild[1] || wild[2] {
		return nil
	}
	return p
}

// partial reads up to three dot-separated parts, each a number or a
// wildcard (then wild is set for it, and parts after a wildcard must be
// wildcards too, as in SemVer's X-ranges). Wildcards in the middle of
// numbers ("3.x.1") are not a version.
func partial(s string) (parts []uint64, wild []bool) {
	fields := strings.Split(s, ".")
	if len(fields) > 3 || s == "" {
		return nil, nil
	}
	seenWild := false
	for _, f := range fields {
		if f == "*" || f == "x" || f == "X" {
			seenWild = true
			parts, wild = append(parts, 0), append(wild, true)
			continue
		}
		n, err := strconv.ParseUint(f, 10, 32)
		if err != nil || seenWild {
			return nil, nil
		}
		parts, wild = append(parts, n), append(wild, false)
	}
	// Trailing wildcards compare as absent parts.
	for len(wild) > 0 && wild[len(wild)-1] {
		parts, wild = parts[:len(parts)-1], wild[:len(wild)-1]
	}
	if len(parts) == 0 {
		return nil, nil
	}
	return parts, wild
}

// cmp compares a full version with a partial one on the parts it gives,
// so that a partial version stands for its whole line: ">3.11" excludes
// every 3.11.x and "<=3.11" includes them, as SemVer's X-ranges do.
func cmp(have, want []uint64) int {
	for i, n := range want {
		switch {
		case have[i] < n:
			return -1
		case have[i] > n:
			return 1
		}
	}
	return 0
}
