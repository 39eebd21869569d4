local M = {}

function M.check(stdin, args, test)
  if stdin == "stdin\n" and table.concat(args, " ") == "foo bar baz" and test == "test\n" then
    return "OK"
  end
  return "FAIL"
end

return M
