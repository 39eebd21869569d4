source("helper.R")

stdin <- readLines(file("stdin"))
test <- readLines("test.txt")
cat(check(stdin, commandArgs(trailingOnly = TRUE), test), "\n", sep = "")
