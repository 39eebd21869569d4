let check input args test =
  if input = "stdin\n" && args = [ "foo"; "bar"; "baz" ] && test = "test\n" then "OK" else "FAIL"
