input = IO.read(:stdio, :eof)
test = File.read!("test.txt")
IO.puts(Helper.check(input, System.argv(), test))
