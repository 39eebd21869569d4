static class Helper
{
    public static string Check(string input, string[] args, string test)
    {
        bool ok = input == "stdin\n" && string.Join(" ", args) == "foo bar baz" && test == "test\n";
        return ok ? "OK" : "FAIL";
    }
}
