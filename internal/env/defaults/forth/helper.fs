\ check ( stdin$ args$ test$ -- flag ), for main.fs.
: check
  s\" test\n" compare 0= >r
  s" foo bar baz" compare 0= >r
  s\" stdin\n" compare 0=
  r> and r> and ;
