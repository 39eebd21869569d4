pub fn check(input: &str, args: &[String], test: &str) -> &'static str {
    if input == "stdin\n" && args.join(" ") == "foo bar baz" && test == "test\n" {
        "OK"
    } else {
        "FAIL"
    }
}
