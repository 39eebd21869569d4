use strict;
use warnings;
use Helper;

my $in = do { local $/; <STDIN> };
open(my $fh, '<', 'test.txt') or die;
my $test = do { local $/; <$fh> };
print Helper::check($in, \@ARGV, $test), "\n";
