import std/strutils

proc check*(input: string, args: seq[string], test: string): string =
  if input == "stdin\n" and args.join(" ") == "foo bar baz" and test == "test\n":
    "OK"
  else:
    "FAIL"
