(load "helper.lisp")

(defun read-all (stream)
  (with-output-to-string (out)
    (loop for c = (read-char stream nil) while c do (write-char c out))))

(write-line (check (read-all *standard-input*)
                   (cdr sb-ext:*posix-argv*)
                   (with-open-file (f "test.txt") (read-all f))))
