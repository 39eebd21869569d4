require "./helper"

input = STDIN.gets_to_end
puts Helper.check(input, ARGV, File.read("test.txt"))
