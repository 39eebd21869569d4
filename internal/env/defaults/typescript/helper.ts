export function check(stdin: string, args: string[], test: string): string {
  return stdin === "stdin\n" && args.join(" ") === "foo bar baz" && test === "test\n"
    ? "OK"
    : `FAIL ${JSON.stringify([stdin, args, test])}`;
}
