:- module(helper, [check/4]).

check("stdin\n", ['foo', 'bar', 'baz'], "test\n", 'OK') :- !.
check(_, _, _, 'FAIL').
