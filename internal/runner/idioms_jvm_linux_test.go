package runner

import (
	"testing"
)

type jvmIdiom = idiom

// jvmLangs are the JVM, .NET, functional and logic languages.
var jvmLangs = []struct {
	lang   string
	idioms []jvmIdiom
}{
	{"java", []jvmIdiom{{
		name: "public class HelloWorld in test.java", main: "test.java", want: "Hello, World!\n",
		files: map[string]string{"test.java": `public class HelloWorld {
    public static void main(String[] args) {
        System.out.println("Hello, World!");
    }
}
`},
	}, {
		name: "class Solution in Main.java and a class in another file", main: "Main.java", stdin: "2 3\n", want: "5\n",
		files: map[string]string{
			"Main.java": `import java.util.Scanner;

class Solution {
    public static void main(String[] args) {
        Scanner in = new Scanner(System.in);
        System.out.println(Adder.add(in.nextInt(), in.nextInt()));
    }
}
`,
			"Adder.java": "public class Adder {\n    static int add(int a, int b) { return a + b; }\n}\n",
		},
	}, {
		name: "compile error", main: "Main.java", bad: "incompatible types",
		files: map[string]string{"Main.java": "public class Main {\n    public static void main(String[] args) { int x = \"s\"; }\n}\n"},
	}}},
	{"kotlin", []jvmIdiom{{
		name: "fun main in solution.kt", main: "solution.kt", stdin: "2 3\n", want: "Point(x=2, y=3) 5\n",
		files: map[string]string{"solution.kt": `data class Point(val x: Int, val y: Int)

fun main() {
    val (a, b) = readLine()!!.trim().split(" ").map { it.toInt() }
    val p = Point(a, b)
    println("$p ${listOf(p.x, p.y).sum()}")
}
`},
	}}},
	{"scala", []jvmIdiom{{
		name: "object Solution extends App in prog.scala", main: "prog.scala", stdin: "2 3\n", want: "5\n",
		files: map[string]string{"prog.scala": `object Solution extends App {
  val Array(a, b) = scala.io.StdIn.readLine().trim.split(" ").map(_.toInt)
  println(List(a, b).sum)
}
`},
	}}},
	{"groovy", []jvmIdiom{{
		name: "script with closures", main: "main.groovy", stdin: "2 3\n", want: "5 [4, 6]\n",
		files: map[string]string{"main.groovy": `def nums = System.in.newReader().readLine().tokenize()*.toInteger()
println "${nums.sum()} ${nums.collect { it * 2 }}"
`},
	}}},
	{"clojure", []jvmIdiom{{
		name: "script with read-line", main: "main.clj", stdin: "2 3\n", want: "5\n",
		files: map[string]string{"main.clj": `(require '[clojure.string :as str])

(let [[a b] (map #(Long/parseLong %) (str/split (str/trim (read-line)) #" "))]
  (println (+ a b)))
`},
	}}},
	{"csharp", []jvmIdiom{{
		name: "LINQ in public class Solution", main: "main.cs", stdin: "2 3\n", want: "sum=5\n",
		files: map[string]string{"main.cs": `using System;
using System.Linq;

public class Solution
{
    public static void Main()
    {
        var nums = Console.ReadLine().Split(' ').Select(int.Parse).ToArray();
        Console.WriteLine($"sum={nums.Sum()}");
    }
}
`},
	}, {
		name: "compile error", main: "main.cs", bad: "CS0029",
		files: map[string]string{"main.cs": "class P { static void Main() { int x = \"s\"; } }\n"},
	}}},
	{"haskell", []jvmIdiom{{
		name: "main with getLine", main: "main.hs", stdin: "2 3\n", want: "5\n",
		files: map[string]string{"main.hs": `main :: IO ()
main = do
  [a, b] <- map read . words <$> getLine
  print (a + b :: Int)
`},
	}, {
		name: "compile error", main: "main.hs", bad: "Couldn't match",
		files: map[string]string{"main.hs": "main :: IO ()\nmain = putStrLn (1 :: Int)\n"},
	}}},
	{"ocaml", []jvmIdiom{{
		name: "Scanf and Printf", main: "main.ml", stdin: "2 3\n", want: "5\n",
		files: map[string]string{"main.ml": `let () = Scanf.scanf " %d %d" (fun a b -> Printf.printf "%d\n" (a + b))
`},
	}, {
		name: "compile error", main: "main.ml", bad: "Error",
		files: map[string]string{"main.ml": "let () = print_int \"s\"\n"},
	}}},
	{"erlang", []jvmIdiom{{
		name: "escript with a #! line", main: "main.erl", stdin: "2 3\n", want: "5\n",
		files: map[string]string{"main.erl": `#!/usr/bin/env escript
main(_) ->
    {ok, [A, B]} = io:fread("", "~d ~d"),
    io:format("~p~n", [A + B]).
`},
	}}},
	{"elixir", []jvmIdiom{{
		name: "module and pipeline in a script", main: "main.exs", stdin: "2 3\n", want: "5\n",
		files: map[string]string{"main.exs": `defmodule Solution do
  def solve(line), do: line |> String.split() |> Enum.map(&String.to_integer/1) |> Enum.sum()
end

IO.gets("") |> Solution.solve() |> IO.puts()
`},
	}}},
	{"racket", []jvmIdiom{{
		name: "#lang racket with read and a package library", main: "main.rkt", stdin: "2 3\n", want: "5 1\n",
		files: map[string]string{"main.rkt": `#lang racket
(require data/queue)
(define q (make-queue))
(enqueue! q (+ (read) (read)))
(enqueue! q 1)
(printf "~a ~a\n" (dequeue! q) (dequeue! q))
`},
	}}},
	{"commonlisp", []jvmIdiom{{
		name: "read and format", main: "main.lisp", stdin: "2 3\n", want: "5\n",
		files: map[string]string{"main.lisp": "(let ((a (read)) (b (read)))\n  (format t \"~a~%\" (+ a b)))\n"},
	}}},
	{"scheme", []jvmIdiom{{
		name: "R7RS imports and read", main: "main.scm", stdin: "2 3\n", want: "5\n",
		files: map[string]string{"main.scm": `(import (scheme base) (scheme read) (scheme write))
(define a (read))
(define b (read))
(display (+ a b))
(newline)
`},
	}}},
	{"prolog", []jvmIdiom{{
		name: "initialization(main) without halt", main: "main.pl", stdin: "2 3\n", want: "5\n",
		files: map[string]string{"main.pl": `:- initialization(main).

main :-
    read_line_to_string(user_input, Line),
    split_string(Line, " ", "", [A, B]),
    number_string(X, A),
    number_string(Y, B),
    Z is X + Y,
    writeln(Z).
`},
	}}},
}

func TestIdiomsJVM(t *testing.T) {
	r, _ := newRunner(t)
	for _, l := range jvmLangs {
		t.Run(l.lang, func(t *testing.T) {
			idiomEnv(t, r, l.lang)
			// The JVM languages spend seconds compiling; two at a time
			// keep both cores busy.
			t.Parallel()
			for _, id := range l.idioms {
				t.Run(id.name, func(t *testing.T) { runIdiom(t, r, l.lang, id) })
			}
		})
	}
}
