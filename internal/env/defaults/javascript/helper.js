exports.check = (stdin, args, test) =>
  stdin.trim() === "stdin" && args.join(" ") === "foo bar baz" && test.trim() === "test"
    ? "OK"
    : `FAIL ${JSON.stringify([stdin, args, test])}`;
