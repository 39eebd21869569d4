def input = System.in.text
def test = new File("test.txt").text
println Helper.check(input, args as List, test)
