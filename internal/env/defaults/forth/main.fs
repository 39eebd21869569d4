include helper.fs

create in-buf 64 allot
create test-buf 64 allot
create args-buf 64 allot
variable args-len  0 args-len !

: add-arg ( c-addr u -- )
  args-len @ if  bl args-buf args-len @ + c!  1 args-len +!  then
  dup >r  args-buf args-len @ +  swap move  r> args-len +! ;
: args$ ( -- c-addr u )  begin next-arg dup while add-arg repeat 2drop  args-buf args-len @ ;
: stdin$ ( -- c-addr u )  in-buf 64 stdin read-file throw  in-buf swap ;
: test$ ( -- c-addr u )
  s" test.txt" r/o open-file throw >r
  test-buf 64 r@ read-file throw  test-buf swap
  r> close-file throw ;

stdin$ args$ test$ check
[if] ." OK" [else] ." FAIL" [then] cr
bye
