module Helper (check) where

check :: String -> [String] -> String -> String
check input args test
  | input == "stdin\n" && args == ["foo", "bar", "baz"] && test == "test\n" = "OK"
  | otherwise = "FAIL"
