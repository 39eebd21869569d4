function check(stdin, args, test) {
    return (stdin == "stdin" && args == "foo bar baz" && test == "test") ? "OK" : "FAIL"
}
