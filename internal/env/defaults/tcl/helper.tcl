proc check {stdin args_ test} {
    if {$stdin eq "stdin\n" && $args_ eq {foo bar baz} && $test eq "test\n"} {
        return OK
    }
    return "FAIL [list $stdin $args_ $test]"
}
