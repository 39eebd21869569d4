(use-modules (ice-9 textual-ports) (helper))

(display (check (get-string-all (current-input-port))
                (cdr (command-line))
                (call-with-input-file "test.txt" get-string-all)))
(newline)
