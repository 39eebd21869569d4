module Helper
  def self.check(stdin, args, test)
    stdin == "stdin\n" && args == %w[foo bar baz] && test == "test\n" ? "OK" : "FAIL #{[stdin, args, test].inspect}"
  end
end
