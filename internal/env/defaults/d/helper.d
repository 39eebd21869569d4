module helper;

import std.array : join;

string check(string input, string[] args, string test)
{
    if (input == "stdin\n" && args.join(" ") == "foo bar baz" && test == "test\n")
        return "OK";
    return "FAIL";
}
