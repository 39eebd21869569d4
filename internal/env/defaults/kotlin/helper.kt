fun check(input: String, args: List<String>, test: String): String =
    if (input == "stdin\n" && args == listOf("foo", "bar", "baz") && test == "test\n") "OK" else "FAIL"
