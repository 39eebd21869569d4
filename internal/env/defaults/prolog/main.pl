:- initialization(main, main).
:- use_module(helper).

main :-
    read_string(user_input, _, Input),
    current_prolog_flag(argv, Args),
    read_file_to_string('test.txt', Test, []),
    check(Input, Args, Test, Result),
    writeln(Result).
