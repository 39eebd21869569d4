source helper.tcl

set f [open test.txt]
set test [read $f]
close $f
puts [check [read stdin] $argv $test]
