package snekbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/runbox-dev/runbox/internal/compat"
)

// value is a JSON value that keeps its object's key order: snekbox's
// error descriptions print the offending value as Python prints the dict
// json.loads made of it.
type value struct {
	kind  kind
	text  string // a string, or a number's literal
	bool  bool   // a boolean
	keys  []string
	elems []value // an array's elements, or an object's values (one per key)
}

type kind int

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

// get is the value of key in an object (the last one, as json.loads
// keeps), and whether it is there.
func (v value) get(key string) (value, bool) {
	for i, k := range v.keys {
		if k == key {
			return v.elems[i], true
		}
	}
	return value{}, false
}

// parseJSON parses one JSON document.
func parseJSON(data []byte) (value, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := readValue(dec, 0)
	if err != nil {
		return value{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return value{}, errors.New("extra data after the JSON value")
	}
	return v, nil
}

func readValue(dec *json.Decoder, depth int) (value, error) {
	if depth > maxJSONDepth {
		return value{}, fmt.Errorf("nested deeper than %d levels", maxJSONDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return value{}, err
	}
	switch t := tok.(type) {
	case nil:
		return value{kind: kindNull}, nil
	case bool:
		return value{kind: kindBool, bool: t}, nil
	case json.Number:
		return value{kind: kindNumber, text: t.String()}, nil
	case string:
		return value{kind: kindString, text: t}, nil
	case json.Delim:
		v := value{kind: kindArray}
		if t == '{' {
			v.kind = kindObject
		}
		for dec.More() {
			key := ""
			if v.kind == kindObject {
				k, err := dec.Token()
				if err != nil {
					return value{}, err
				}
				key, _ = k.(string)
			}
			e, err := readValue(dec, depth+1)
			if err != nil {
				return value{}, err
			}
			if v.kind == kindObject {
				// A repeated key keeps its first place and its last value,
				// as a Python dict does.
				if i := indexOf(v.keys, key); i >= 0 {
					v.elems[i] = e
					continue
				}
				v.keys = append(v.keys, key)
			}
			v.elems = append(v.elems, e)
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return value{}, err
		}
		return v, nil
	}
	return value{}, fmt.Errorf("unexpected token %v", tok)
}

func indexOf(keys []string, key string) int {
	for i, k := range keys {
		if k == key {
			return i
		}
	}
	return -1
}

// repr is v as Python's repr() prints what json.loads made of it.
func (v value) repr() string {
	var sb strings.Builder
	v.writeRepr(&sb)
	return sb.String()
}

func (v value) writeRepr(sb *strings.Builder) {
	switch v.kind {
	case kindNull:
		sb.WriteString("None")
	case kindBool:
		if v.bool {
			sb.WriteString("True")
		} else {
			sb.WriteString("False")
		}
	case kindNumber:
		sb.WriteString(numberRepr(v.text))
	case kindString:
		sb.WriteString(pyStr(v.text))
	case kindArray:
		sb.WriteByte('[')
		for i, e := range v.elems {
			if i > 0 {
				sb.WriteString(", ")
			}
			e.writeRepr(sb)
		}
		sb.WriteByte(']')
	case kindObject:
		sb.WriteByte('{')
		for i, k := range v.keys {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(pyStr(k))
			sb.WriteString(": ")
			v.elems[i].writeRepr(sb)
		}
		sb.WriteByte('}')
	}
}

// numberRepr is a JSON number as Python prints it: an int as written, a
// float (a fraction or an exponent) as repr(float).
func numberRepr(lit string) string {
	if !strings.ContainsAny(lit, ".eE") {
		if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
			return strconv.FormatInt(n, 10)
		}
		return lit // a Python int has no bound; the literal is its repr
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return "inf" // json.loads makes inf of a float beyond the range
	}
	return compat.PyFloat(f)
}

// pyStr is repr(s) in Python: single quotes unless s holds a single quote
// and no double quote; printable characters as they are, the others
// escaped.
func pyStr(s string) string {
	quote := byte('\'')
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		quote = '"'
	}
	var sb strings.Builder
	sb.WriteByte(quote)
	for _, r := range s {
		switch {
		case r == rune(quote) || r == '\\':
			sb.WriteByte('\\')
			sb.WriteRune(r)
		case r == '\n':
			sb.WriteString(`\n`)
		case r == '\r':
			sb.WriteString(`\r`)
		case r == '\t':
			sb.WriteString(`\t`)
		case r == utf8.RuneError || unicode.IsPrint(r):
			sb.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&sb, `\x%02x`, r)
		case r < 0x10000:
			fmt.Fprintf(&sb, `\u%04x`, r)
		default:
			fmt.Fprintf(&sb, `\U%08x`, r)
		}
	}
	sb.WriteByte(quote)
	return sb.String()
}
