require 'helper'

puts Helper.check($stdin.read, ARGV, File.read('test.txt'))
