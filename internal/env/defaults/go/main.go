package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	in, _ := io.ReadAll(os.Stdin)
	test, _ := os.ReadFile("test.txt")
	fmt.Println(check(string(in), os.Args[1:], string(test)))
}
