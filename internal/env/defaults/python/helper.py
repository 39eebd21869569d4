def check(stdin, args, test):
    if stdin.strip() == "stdin" and args == ["foo", "bar", "baz"] and test.strip() == "test":
        return "OK"
    return "FAIL %r %r %r" % (stdin, args, test)
