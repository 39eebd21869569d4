-module(helper).
-export([check/3]).

check("stdin\n", ["foo", "bar", "baz"], "test\n") -> "OK";
check(_, _, _) -> "FAIL".
