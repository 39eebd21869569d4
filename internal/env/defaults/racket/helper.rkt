#lang racket/base
(provide check)

(define (check input args test)
  (if (and (equal? input "stdin\n") (equal? args '("foo" "bar" "baz")) (equal? test "test\n"))
      "OK"
      "FAIL"))
