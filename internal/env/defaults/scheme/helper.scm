(define-module (helper)
  #:export (check))

(define (check input args test)
  (if (and (string=? input "stdin\n")
           (equal? args '("foo" "bar" "baz"))
           (string=? test "test\n"))
      "OK"
      "FAIL"))
