(ns main
  (:require [helper :refer [check]]))

(println (check (slurp *in*) *command-line-args* (slurp "test.txt")))
