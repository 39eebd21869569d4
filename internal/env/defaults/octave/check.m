function r = check(stdin, args, test)
  if strcmp(stdin, "stdin") && isequal(args, {"foo"; "bar"; "baz"}) && strcmp(test, "test")
    r = "OK";
  else
    r = "FAIL";
  end
end
