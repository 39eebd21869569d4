check <- function(stdin, args, test) {
  if (identical(stdin, "stdin") && identical(args, c("foo", "bar", "baz")) && identical(test, "test")) "OK" else "FAIL"
}
