(ns helper)

(defn check [input args test]
  (if (and (= input "stdin\n") (= args ["foo" "bar" "baz"]) (= test "test\n"))
    "OK"
    "FAIL"))
