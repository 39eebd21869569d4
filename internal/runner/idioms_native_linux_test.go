package runner

import (
	"testing"
)

type nativeIdiom = idiom

// nativeLang is one compiled-to-machine-code environment: its idioms and a
// program that does not compile, with a piece of the compiler's message.
type nativeLang struct {
	lang       string
	idioms     []nativeIdiom
	badMain    string
	bad        string
	badMessage string
}

var nativeLangs = []nativeLang{
	{
		lang: "c",
		idioms: []nativeIdiom{{
			name: "scanf and qsort", main: "main.c", stdin: "3\n5 1 4\n", want: "1 4 5 sum=10\n",
			files: map[string]string{"main.c": `#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

int main(void) {
	int n, a[16], sum = 0;
	if (scanf("%d", &n) != 1) return 1;
	for (int i = 0; i < n; i++) { scanf("%d", &a[i]); sum += a[i]; }
	qsort(a, n, sizeof a[0], cmp);
	for (int i = 0; i < n; i++) printf("%d ", a[i]);
	printf("sum=%d\n", sum);
}
`},
		}, {
			name: "every source file is compiled", main: "main.c", want: "42\n",
			files: map[string]string{
				"main.c":  "#include <stdio.h>\nint answer(void);\nint main(void) { printf(\"%d\\n\", answer()); }\n",
				"other.c": "int answer(void) { return 42; }\n",
			},
		}},
		badMain: "main.c", bad: "int main(void) { return 0 }\n", badMessage: "error: expected",
	},
	{
		lang: "c++",
		idioms: []nativeIdiom{{
			name: "bits/stdc++ and iostream", main: "main.cpp", stdin: "4\n3 1 4 1\n", want: "1 1 3 4 | 9\n",
			files: map[string]string{"main.cpp": `#include <bits/stdc++.h>
using namespace std;

int main() {
    ios::sync_with_stdio(false);
    cin.tie(nullptr);
    int n;
    cin >> n;
    vector<long long> v(n);
    for (auto &x : v) cin >> x;
    sort(v.begin(), v.end());
    for (auto x : v) cout << x << ' ';
    cout << "| " << accumulate(v.begin(), v.end(), 0LL) << '\n';
}
`},
		}, {
			name: "header and two translation units", main: "main.cpp", want: "hello, box\n",
			files: map[string]string{
				"main.cpp":  "#include <iostream>\n#include \"greet.hpp\"\nint main() { std::cout << greet(\"box\") << std::endl; }\n",
				"greet.hpp": "#pragma once\n#include <string>\nstd::string greet(const std::string &who);\n",
				"greet.cpp": "#include \"greet.hpp\"\nstd::string greet(const std::string &who) { return \"hello, \" + who; }\n",
			},
		}},
		badMain: "main.cpp", bad: "#include <vector>\nint main() { std::vector<int> v; v.push(1); }\n", badMessage: "error: ",
	},
	{
		lang: "go",
		idioms: []nativeIdiom{{
			// One program: each Go compile builds the standard library it uses
			// (the build cache starts empty in every box), ~20s on 2 cores.
			name: "bufio scanner, goroutine, package main in two files", main: "main.go", stdin: "1 2 3\n4\n", want: "squares 30\n",
			files: map[string]string{
				"main.go": `package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
)

func main() {
	sc := bufio.NewScanner(os.Stdin)
	sc.Split(bufio.ScanWords)
	var nums []int
	for sc.Scan() {
		n, _ := strconv.Atoi(sc.Text())
		nums = append(nums, n)
	}
	ch := make(chan int)
	go squares(ch, nums)
	total := 0
	for v := range ch {
		total += v
	}
	fmt.Println(label, total)
}
`,
				"squares.go": `package main

const label = "squares"

func squares(ch chan<- int, nums []int) {
	for _, n := range nums {
		ch <- n * n
	}
	close(ch)
}
`,
			},
		}},
		badMain: "main.go", bad: "package main\n\nfunc main() { x := }\n", badMessage: "syntax error",
	},
	{
		lang: "rust",
		idioms: []nativeIdiom{{
			name: "stdin lines and iterators", main: "main.rs", stdin: "apple 3\npear 2\napple 4\n", want: "apple=7 pear=2\n",
			files: map[string]string{"main.rs": `use std::collections::BTreeMap;
use std::io::{self, BufRead};

fn main() {
    let mut count: BTreeMap<String, u32> = BTreeMap::new();
    for line in io::stdin().lock().lines() {
        let line = line.unwrap();
        let mut it = line.split_whitespace();
        if let (Some(k), Some(v)) = (it.next(), it.next()) {
            *count.entry(k.to_string()).or_insert(0) += v.parse::<u32>().unwrap();
        }
    }
    let parts: Vec<String> = count.iter().map(|(k, v)| format!("{}={}", k, v)).collect();
    println!("{}", parts.join(" "));
}
`},
		}, {
			name: "mod in a second file", main: "main.rs", want: "6\n",
			files: map[string]string{
				"main.rs":   "mod shapes;\n\nfn main() {\n    let r = shapes::Rect { w: 2, h: 3 };\n    println!(\"{}\", r.area());\n}\n",
				"shapes.rs": "pub struct Rect {\n    pub w: u32,\n    pub h: u32,\n}\n\nimpl Rect {\n    pub fn area(&self) -> u32 {\n        self.w * self.h\n    }\n}\n",
			},
		}},
		badMain: "main.rs", bad: "fn main() {\n    let x: i32 = \"no\";\n}\n", badMessage: "error[E0308]: mismatched types",
	},
	{
		lang: "d",
		idioms: []nativeIdiom{{
			name: "ranges and readln", main: "main.d", stdin: "5 3 8 1\n", want: "[1, 3, 5, 8] 17\n",
			files: map[string]string{"main.d": `import std.stdio, std.algorithm, std.array, std.conv, std.string;

void main()
{
    auto xs = readln.strip.split.map!(to!int).array;
    xs.sort();
    writeln(xs, " ", xs.sum);
}
`},
		}, {
			name: "import std and a struct", main: "main.d", want: "Point(1, 2) 5\n",
			files: map[string]string{"main.d": `import std;

struct Point { int x, y; }

void main()
{
    auto p = Point(1, 2);
    writefln("%s %d", p, p.x * p.x + p.y * p.y);
}
`},
		}},
		badMain: "main.d", bad: "void main() { undefinedThing(); }\n", badMessage: "undefined identifier `undefinedThing`",
	},
	{
		lang: "fortran",
		idioms: []nativeIdiom{{
			name: "list-directed read and array intrinsics", main: "main.f90", stdin: "4\n2 7 1 8\n", want: "18 8\n",
			files: map[string]string{"main.f90": `program sums
  implicit none
  integer :: n
  integer, allocatable :: a(:)
  read *, n
  allocate(a(n))
  read *, a
  write (*, '(i0, 1x, i0)') sum(a), maxval(a)
end program sums
`},
		}, {
			name: "modules in two other files", main: "main.f90", want: "12.50\n",
			files: map[string]string{
				"main.f90":     "program main\n  use geometry\n  implicit none\n  write (*, '(f0.2)') area(5.0, 2.5)\nend program main\n",
				"geometry.f90": "module geometry\n  use kinds\n  implicit none\ncontains\n  real(wp) function area(w, h)\n    real, intent(in) :: w, h\n    area = w * h\n  end function area\nend module geometry\n",
				"kinds.f90":    "module kinds\n  implicit none\n  integer, parameter :: wp = kind(1.0)\nend module kinds\n",
			},
		}},
		badMain: "main.f90", bad: "program bad\n  implicit none\n  x = 1\nend program bad\n", badMessage: "has no IMPLICIT type",
	},
	{
		lang: "pascal",
		idioms: []nativeIdiom{{
			name: "readln and writeln", main: "main.pas", stdin: "3 4\n", want: "7 12\n",
			files: map[string]string{"main.pas": `program Sum;
var
  a, b: Integer;
begin
  ReadLn(a, b);
  WriteLn(a + b, ' ', a * b);
end.
`},
		}, {
			name: "objfpc with sysutils and classes", main: "main.pas", want: "a,b,c 3.14\n",
			files: map[string]string{"main.pas": `program Lists;
{$mode objfpc}{$H+}
uses SysUtils, Classes;
var
  L: TStringList;
begin
  L := TStringList.Create;
  try
    L.Add('c'); L.Add('a'); L.Add('b');
    L.Sort;
    WriteLn(L.CommaText, ' ', FormatFloat('0.00', Pi));
  finally
    L.Free;
  end;
end.
`},
		}},
		badMain: "main.pas", bad: "program Bad;\nbegin\n  WriteLn(Missing);\nend.\n", badMessage: "Error: Identifier not found \"Missing\"",
	},
	{
		lang: "ada",
		idioms: []nativeIdiom{{
			name: "integer text io", main: "main.adb", stdin: "3\n10 20 12\n", want: "42\n",
			files: map[string]string{"main.adb": `with Ada.Text_IO;         use Ada.Text_IO;
with Ada.Integer_Text_IO; use Ada.Integer_Text_IO;

procedure Main is
   N, X, Sum : Integer := 0;
begin
   Get (N);
   for I in 1 .. N loop
      Get (X);
      Sum := Sum + X;
   end loop;
   Put (Sum, Width => 0);
   New_Line;
end Main;
`},
		}, {
			name: "generic container", main: "main.adb", want: "3 6\n",
			files: map[string]string{"main.adb": `with Ada.Text_IO; use Ada.Text_IO;
with Ada.Containers.Vectors;

procedure Main is
   package Int_Vectors is new Ada.Containers.Vectors (Positive, Integer);
   V     : Int_Vectors.Vector;
   Total : Integer := 0;
begin
   for I in 1 .. 3 loop
      V.Append (I);
   end loop;
   for E of V loop
      Total := Total + E;
   end loop;
   Put_Line (Integer'Image (Integer (V.Length)) (2 .. 2) & Integer'Image (Total));
end Main;
`},
		}},
		badMain: "main.adb", bad: "procedure Main is\nbegin\n   null\nend Main;\n", badMessage: "missing \";\"",
	},
	{
		lang: "nim",
		idioms: []nativeIdiom{{
			name: "strutils and sequtils", main: "main.nim", stdin: "3 1 2\n", want: "@[1, 2, 3] 6\n",
			files: map[string]string{"main.nim": `import strutils, sequtils, algorithm

let xs = stdin.readLine.splitWhitespace.map(parseInt).sorted
echo xs, " ", xs.foldl(a + b)
`},
		}, {
			name: "tables and objects", main: "main.nim", want: "b=2\n",
			files: map[string]string{"main.nim": `import tables

type Counter = object
  seen: Table[string, int]

var c = Counter(seen: initTable[string, int]())
for w in ["a", "b", "b"]:
  c.seen.mgetOrPut(w, 0).inc
echo "b=", c.seen["b"]
`},
		}},
		badMain: "main.nim", bad: "echo undefinedThing\n", badMessage: "Error: undeclared identifier: 'undefinedThing'",
	},
	{
		lang: "crystal",
		idioms: []nativeIdiom{{
			name: "gets and blocks", main: "main.cr", stdin: "4 5 6\n", want: "15 [4, 5, 6]\n",
			files: map[string]string{"main.cr": `xs = gets.not_nil!.split.map(&.to_i)
puts "#{xs.sum} #{xs.sort}"
`},
		}},
		badMain: "main.cr", bad: "puts undefined_thing\n", badMessage: "undefined local variable or method 'undefined_thing'",
	},
	{
		lang: "cobol",
		idioms: []nativeIdiom{{
			name: "accept, perform varying, display", main: "main.cob", stdin: "box\n", want: "Hello, box: 0055\n",
			files: map[string]string{"main.cob": `       IDENTIFICATION DIVISION.
       PROGRAM-ID. SUMS.
       DATA DIVISION.
       WORKING-STORAGE SECTION.
       01  WS-I        PIC 99.
       01  WS-TOTAL    PIC 9(4) VALUE 0.
       01  WS-NAME     PIC X(20).
       PROCEDURE DIVISION.
           ACCEPT WS-NAME
           PERFORM VARYING WS-I FROM 1 BY 1 UNTIL WS-I > 10
               ADD WS-I TO WS-TOTAL
           END-PERFORM
           DISPLAY "Hello, " FUNCTION TRIM(WS-NAME) ": " WS-TOTAL
           STOP RUN.
`},
		}},
		badMain: "main.cob", bad: "       IDENTIFICATION DIVISION.\n       PROGRAM-ID. BAD.\n       PROCEDURE DIVISION.\n           MOVE 1 TO NOWHERE\n           STOP RUN.\n",
		badMessage: "'NOWHERE' is not defined",
	},
	{
		lang: "assembly",
		idioms: []nativeIdiom{{
			name: "write and exit syscalls", main: "main.asm", want: "Hello, box\n",
			files: map[string]string{"main.asm": `section .data
msg:    db "Hello, box", 10
len:    equ $ - msg

section .text
global _start
_start:
        mov     rax, 1
        mov     rdi, 1
        mov     rsi, msg
        mov     rdx, len
        syscall
        mov     rax, 60
        xor     rdi, rdi
        syscall
`},
		}},
		badMain: "main.asm", bad: "section .text\nglobal _start\n_start:\n        mov rax, rbx, rcx\n", badMessage: "error: invalid combination of opcode and operands",
	},
}

// TestIdiomsNative runs, per native language, programs as its users write
// them, and a compile error that must come back as the compile step's output
// with the compiler's own message.
func TestIdiomsNative(t *testing.T) {
	r, _ := newRunner(t)
	for _, l := range nativeLangs {
		t.Run(l.lang, func(t *testing.T) {
			idiomEnv(t, r, l.lang)
			for _, id := range l.idioms {
				t.Run(id.name, func(t *testing.T) { runIdiom(t, r, l.lang, id) })
			}
			t.Run("compile error", func(t *testing.T) {
				resp, err := r.Run(t.Context(), Request{Language: l.lang, Main: l.badMain, Files: []File{{Name: l.badMain, Content: []byte(l.bad)}}})
				if err != nil {
					t.Fatal(err)
				}
				// Some compilers (fpc) write their messages on stdout:
				// both streams are searched.
				wantCompileError(t, resp, l.badMessage)
			})
		})
	}
}
