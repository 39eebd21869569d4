-module(main).
-export([main/1]).

main(Args) ->
    Input = read_all([]),
    {ok, Test} = file:read_file("test.txt"),
    io:format("~s~n", [helper:check(Input, Args, binary_to_list(Test))]).

read_all(Acc) ->
    case io:get_line("") of
        eof -> lists:flatten(lists:reverse(Acc));
        Line -> read_all([Line | Acc])
    end.
