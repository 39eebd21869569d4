module Helper
  def self.check(input : String, args : Array(String), test : String) : String
    if input == "stdin\n" && args.join(" ") == "foo bar baz" && test == "test\n"
      "OK"
    else
      "FAIL"
    end
  end
end
