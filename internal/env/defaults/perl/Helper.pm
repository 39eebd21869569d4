package Helper;
use strict;
use warnings;

sub check {
    my ($in, $args, $test) = @_;
    return ($in eq "stdin\n" && join(' ', @$args) eq 'foo bar baz' && $test eq "test\n") ? 'OK' : 'FAIL';
}

1;
