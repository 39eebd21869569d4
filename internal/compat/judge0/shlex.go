package judge0

import (
	"errors"
	"strings"
)

// Judge0 appends command_line_arguments to the run command in a bash
// script, so the shell splits them. split does the part of that a plain
// argument list can carry: words separated by blanks, single quotes
// keeping everything, double quotes keeping everything but \" and \\,
// and a backslash outside quotes keeping the next character. Expansions
// ($x, *, ~) are not performed: the words reach the program as written.
func split(s string) ([]string, error) {
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
				return nil, errors.New("ends with an unescaped backslash")
			}
			i++
			word.WriteByte(s[i])
			inWord = true
		case '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("has an unterminated single quote")
			}
			word.WriteString(s[i+1 : i+1+end])
			i += 1 + end
			inWord = true
		case '"':
			for i++; ; i++ {
				if i == len(s) {
					return nil, errors.New("has an unterminated double quote")
				}
				if s[i] == '"' {
					break
				}
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
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
