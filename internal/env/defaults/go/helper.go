package main

import "strings"

func check(in string, args []string, test string) string {
	if in == "stdin\n" && strings.Join(args, " ") == "foo bar baz" && test == "test\n" {
		return "OK"
	}
	return "FAIL"
}
