import std/os

import helper

let input = stdin.readAll()
echo check(input, commandLineParams(), readFile("test.txt"))
