package compat

import (
	"reflect"
	"strings"
	"testing"
)

// split against what Python's shlex.split answers.
func TestSplitWords(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  error
	}{
		{"", nil, nil},
		{"  \t\r\n ", nil, nil},
		{"/venv/bin/python hello.py", []string{"/venv/bin/python", "hello.py"}, nil},
		{"a  b\tc\nd\re", []string{"a", "b", "c", "d", "e"}, nil},
		{`'a b' "c d"`, []string{"a b", "c d"}, nil},
		{`a'b'"c"d`, []string{"abcd"}, nil},
		{`'' ""`, []string{"", ""}, nil},
		{`a ''`, []string{"a", ""}, nil},
		{`e\ f`, []string{"e f"}, nil},
		{`\a\\b`, []string{`a\b`}, nil},
		{"a\\\nb", []string{"a\nb"}, nil},
		{`"a\"b\\c\d\$"`, []string{`a"b\c\d\$`}, nil},
		{`'a\b\'`, []string{`a\b\`}, nil},
		{`"it's"`, []string{"it's"}, nil},
		{`'say "hi"'`, []string{`say "hi"`}, nil},
		{`#not a comment`, []string{"#not", "a", "comment"}, nil},
		{`a;b|c&d>e`, []string{"a;b|c&d>e"}, nil},
		{"Olá 'Açúcar x'", []string{"Olá", "Açúcar x"}, nil},
		{`echo 'a`, nil, ErrNoClosingQuotation},
		{`echo "a`, nil, ErrNoClosingQuotation},
		{`echo "a\"`, nil, ErrNoClosingQuotation},
		{`echo a\`, nil, ErrNoEscapedCharacter},
		{`echo "a\`, nil, ErrNoEscapedCharacter},
	} {
		got, err := SplitWords(tc.in)
		if err != tc.err || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SplitWords(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// quote is Python's shlex.quote.
func quote(s string) string {
	if s == "" {
		return "''"
	}
	if strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./-_", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// FuzzSplit: split never panics, and what it splits, quoted back and
// joined, splits to the same words.
func FuzzSplitWords(f *testing.F) {
	for _, s := range []string{"a b", `'a b' "c\"d" e\ f`, `"`, `\`, "a\x00b", "''", `"\\"`, "Olá\n'x y'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := SplitWords(s)
		if err != nil {
			return
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = quote(w)
		}
		again, err := SplitWords(strings.Join(quoted, " "))
		if err != nil || len(again) != len(words) || len(words) > 0 && !reflect.DeepEqual(again, words) {
			t.Fatalf("SplitWords(%q) = %q; quoted back %q splits to %q, %v", s, words, strings.Join(quoted, " "), again, err)
		}
	})
}
