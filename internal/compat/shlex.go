package compat

import "strings"

// ShlexError is a line split cannot split, worded as Python's shlex words
// it: the words reach the client, as Codebox's would.
type ShlexError string

func (e ShlexError) Error() string { return string(e) }

// The errors of split.
const (
	ErrNoClosingQuotation ShlexError = "No closing quotation"
	ErrNoEscapedCharacter ShlexError = "No escaped character"
)

// SplitWords splits a command line as Python's shlex.split(s) does (POSIX
// mode, no comments; Codebox splits its commands so, and Judge0's shell
// splits command_line_arguments the same way, without expansions): words are separated by
// spaces, tabs, carriage returns and newlines; single quotes keep
// everything up to the next single quote; double quotes keep everything
// up to the next unescaped double quote, a backslash escaping only a
// double quote or a backslash there; outside quotes a backslash keeps the
// next character, whatever it is. Quotes may join a word's parts (a'b'"c"
// is abc), and a quoted empty string is an empty word.
//
// It works on bytes: every special character is ASCII, and a byte of a
// multibyte UTF-8 character is never one.
func SplitWords(s string) ([]string, error) {
	var (
		words  []string
		word   strings.Builder
		inWord bool // a word has started (possibly empty, from quotes)
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case ' ', '\t', '\r', '\n':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		case '\\':
			if i+1 == len(s) {
				return nil, ErrNoEscapedCharacter
			}
			i++
			word.WriteByte(s[i])
			inWord = true
		case '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, ErrNoClosingQuotation
			}
			word.WriteString(s[i+1 : i+1+end])
			i += 1 + end
			inWord = true
		case '"':
			i++
			for ; ; i++ {
				if i == len(s) {
					return nil, ErrNoClosingQuotation
				}
				if s[i] == '"' {
					break
				}
				if s[i] == '\\' {
					if i+1 == len(s) {
						return nil, ErrNoEscapedCharacter
					}
					if n := s[i+1]; n == '"' || n == '\\' {
						i++
					}
				}
				word.WriteByte(s[i])
			}
			inWord = true
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, nil
}
