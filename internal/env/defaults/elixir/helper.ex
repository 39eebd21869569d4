defmodule Helper do
  def check("stdin\n", ["foo", "bar", "baz"], "test\n"), do: "OK"
  def check(_, _, _), do: "FAIL"
end
