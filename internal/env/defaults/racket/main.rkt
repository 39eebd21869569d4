#lang racket/base
(require racket/port racket/file "helper.rkt")

(displayln (check (port->string (current-input-port))
                  (vector->list (current-command-line-arguments))
                  (file->string "test.txt")))
