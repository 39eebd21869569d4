object Helper {
  def check(input: String, args: List[String], test: String): String =
    if (input == "stdin\n" && args == List("foo", "bar", "baz") && test == "test\n") "OK" else "FAIL"
}
