class Helper {
    static String check(String input, List<String> args, String test) {
        input == "stdin\n" && args == ["foo", "bar", "baz"] && test == "test\n" ? "OK" : "FAIL"
    }
}
