(defun check (input args test)
  (if (and (string= input (format nil "stdin~%"))
           (equal args '("foo" "bar" "baz"))
           (string= test (format nil "test~%")))
      "OK"
      "FAIL"))
