package runner

import (
	"strings"
	"testing"

	"github.com/runbox-dev/runbox/internal/jail"
)

type scriptIdiom = idiom

// scriptLang is one environment of the "script" group: its idioms and a
// program with a syntax error, with a piece of the tool's own message (on
// stderr, or on stdout for tools that print it there).
type scriptLang struct {
	lang       string
	idioms     []scriptIdiom
	badMain    string
	bad        string
	badMessage string
}

var scriptLangs = []scriptLang{
	{
		lang: "perl",
		idioms: []scriptIdiom{{
			name: "use of a module beside the main file, without use lib", main: "main.pl", stdin: "3\n4\n5\n", want: "sum 12\n",
			files: map[string]string{
				"main.pl": "use strict;\nuse warnings;\nuse MyList qw(total);\n\nchomp(my @n = <STDIN>);\nprint \"sum \", total(@n), \"\\n\";\n",
				"MyList.pm": "package MyList;\nuse strict;\nuse warnings;\nuse Exporter 'import';\nour @EXPORT_OK = qw(total);\n\n" +
					"sub total { my $s = 0; $s += $_ for @_; return $s }\n\n1;\n",
			},
		}},
		badMain: "main.pl", bad: "my $x = ;\n", badMessage: "syntax error at main.pl line 1",
	},
	{
		lang: "python",
		idioms: []scriptIdiom{{
			name: "import of a module beside the main file", main: "main.py", stdin: "b a c\n", args: []string{"-v"}, want: "a,b,c -v\n",
			files: map[string]string{
				"main.py":  "import sys\nfrom words import sort_words\n\nprint(sort_words(sys.stdin.read()), *sys.argv[1:])\n",
				"words.py": "def sort_words(s):\n    return \",\".join(sorted(s.split()))\n",
			},
		}},
		badMain: "main.py", bad: "print(\n", badMessage: "SyntaxError",
	},
	{
		lang: "javascript",
		idioms: []scriptIdiom{{
			name: "require of ./helper without extension", main: "main.js", stdin: "1 2 3\n", want: "6\n",
			files: map[string]string{
				"main.js":   "const { sum } = require('./helper');\nconst input = require('fs').readFileSync(0, 'utf8');\nconsole.log(sum(input.trim().split(/\\s+/).map(Number)));\n",
				"helper.js": "module.exports.sum = (xs) => xs.reduce((a, b) => a + b, 0);\n",
			},
		}},
		badMain: "main.js", bad: "let = ;\n", badMessage: "SyntaxError",
	},
	{
		lang: "bash",
		idioms: []scriptIdiom{{
			name: "jq, gawk, sed, grep and sort in a pipeline", main: "main.sh", stdin: `{"items":[{"n":"b","v":2},{"n":"a","v":3},{"n":"c","v":5}]}`,
			want: "A=3\nB=2\ntotal 10\n",
			files: map[string]string{"main.sh": `set -euo pipefail
json=$(cat)
echo "$json" | jq -r '.items[] | "\(.n)=\(.v)"' | grep -v '^c=' | sort | sed 's/^[a-z]/\U&/'
echo "$json" | jq -r '.items[].v' | gawk '{ s += $1 } END { printf "total %d\n", s }'
`},
		}},
		badMain: "main.sh", bad: "if then fi\n", badMessage: "syntax error",
	},
	{
		lang: "awk",
		idioms: []scriptIdiom{{
			name: "fields of stdin, a var=value arg and @include", main: "main.awk", stdin: "x 1\ny 2\nx 3\n", args: []string{"key=x"},
			want: "x 4\n",
			files: map[string]string{
				"main.awk": "@include \"lib.awk\"\n$1 == key { add($2) }\nEND { print key, total }\n",
				"lib.awk":  "function add(v) { total += v }\n",
			},
		}},
		badMain: "main.awk", bad: "BEGIN { print ( }\n", badMessage: "syntax error",
	},
	{
		lang: "ruby",
		idioms: []scriptIdiom{{
			name: "require of a file beside the main file, without require_relative", main: "main.rb", stdin: "2 3 4\n", want: "24\n",
			files: map[string]string{
				"main.rb": "require 'calc'\n\nputs Calc.product(gets.split.map(&:to_i))\n",
				"calc.rb": "module Calc\n  def self.product(xs) = xs.reduce(1, :*)\nend\n",
			},
		}},
		badMain: "main.rb", bad: "def x(\n", badMessage: "syntax error",
	},
	{
		lang: "php",
		idioms: []scriptIdiom{{
			name: "require_once and fscanf of stdin", main: "main.php", stdin: "20 22\n", want: "sum: 42\n",
			files: map[string]string{
				"main.php": "<?php\nrequire_once 'lib.php';\n\nfscanf(STDIN, \"%d %d\", $a, $b);\necho label(\"sum\"), $a + $b, PHP_EOL;\n",
				"lib.php":  "<?php\nfunction label(string $s): string { return \"$s: \"; }\n",
			},
		}},
		badMain: "main.php", bad: "<?php\necho 1\necho 2;\n", badMessage: "Parse error: syntax error",
	},
	{
		lang: "lua",
		idioms: []scriptIdiom{{
			name: "require of a module beside the main file", main: "main.lua", stdin: "5\n", want: "120\n",
			files: map[string]string{
				"main.lua":  "local m = require(\"mathx\")\nprint(m.fact(io.read(\"n\")))\n",
				"mathx.lua": "local M = {}\nfunction M.fact(n) if n <= 1 then return 1 end return n * M.fact(n - 1) end\nreturn M\n",
			},
		}},
		badMain: "main.lua", bad: "x = = 1\n", badMessage: "unexpected symbol",
	},
	{
		lang: "tcl",
		idioms: []scriptIdiom{{
			name: "source, gets stdin and lmap", main: "main.tcl", stdin: "1 2 3\n", args: []string{"x"}, want: "2 4 6 x\n",
			files: map[string]string{
				"main.tcl": "source [file join [file dirname [info script]] util.tcl]\ngets stdin line\nputs \"[double $line] [lindex $argv 0]\"\n",
				"util.tcl": "proc double {xs} { lmap x $xs {expr {$x * 2}} }\n",
			},
		}},
		badMain: "main.tcl", bad: "puts \"a\n", badMessage: "missing \"",
	},
	{
		lang: "r",
		idioms: []scriptIdiom{{
			name: "source, readLines of stdin and stats", main: "main.R", stdin: "1\n2\n3\n4\n", want: "mean 2.5 sd 1.29\n",
			files: map[string]string{
				"main.R": "source(\"fmt.R\")\nx <- as.numeric(readLines(file(\"stdin\")))\ncat(fmt(x), \"\\n\", sep = \"\")\n",
				"fmt.R":  "fmt <- function(x) sprintf(\"mean %s sd %s\", mean(x), round(sd(x), 2))\n",
			},
		}},
		badMain: "main.R", bad: "x <- c(1,\n", badMessage: "unexpected end of input",
	},
	{
		lang: "typescript",
		idioms: []scriptIdiom{{
			name: "ES import of ./helper, an interface and node's fs", main: "main.ts", stdin: "ada 36\n", want: "Ada is 36\n",
			files: map[string]string{
				"main.ts":   "import { readFileSync } from \"fs\";\nimport { Person, describe } from \"./person\";\n\nconst [name, age] = readFileSync(0, \"utf8\").trim().split(\" \");\nconst p: Person = { name, age: Number(age) };\nconsole.log(describe(p));\n",
				"person.ts": "export interface Person {\n  name: string;\n  age: number;\n}\n\nexport const describe = (p: Person): string => `${p.name[0].toUpperCase()}${p.name.slice(1)} is ${p.age}`;\n",
			},
		}},
		// A type error fails the compile step, as tsc's exit status says.
		badMain: "main.ts", bad: "const n: number = \"one\";\n", badMessage: "error TS2322",
	},
	{
		lang: "octave",
		idioms: []scriptIdiom{{
			name: "a function file beside the script, vectors and printf", main: "main.m", stdin: "1 2 3 4\n", want: "norm2 30\n",
			files: map[string]string{
				"main.m":   "x = str2num(fgetl(stdin));\nprintf(\"norm2 %d\\n\", sqnorm(x));\n",
				"sqnorm.m": "function r = sqnorm(v)\n  r = sum(v .^ 2);\nend\n",
			},
		}},
		badMain: "main.m", bad: "x = [1 2\n", badMessage: "parse error",
	},
	{
		lang: "sqlite",
		idioms: []scriptIdiom{{
			name: "tables, GROUP BY and .read of a second file", main: "main.sql", want: "a|3\nb|4\n",
			files: map[string]string{
				"main.sql":   ".read schema.sql\nINSERT INTO t VALUES ('a', 1), ('b', 4), ('a', 2);\nSELECT k, sum(v) FROM t GROUP BY k ORDER BY k;\n",
				"schema.sql": "CREATE TABLE t (k TEXT, v INTEGER);\n",
			},
		}},
		badMain: "main.sql", bad: "SELEC 1;\n", badMessage: "syntax error",
	},
	{
		lang: "brainfuck",
		idioms: []scriptIdiom{{
			name: "hello world", main: "main.bf", want: "Hello World!\n",
			files: map[string]string{"main.bf": "++++++++[>++++[>++>+++>+++>+<<<<-]>+>+>->>+[<]<-]>>.>---.+++++++..+++.>>.<-.<.+++.------.--------.>>+.>++.\n"},
		}, {
			name: "echo of stdin", main: "main.bf", stdin: "abc", args: []string{"ignored"}, want: "abc",
			files: map[string]string{"main.bf": ",[.,]\n"},
		}},
		badMain: "main.bf", bad: "[[.]\n", badMessage: "Unbalanced brackets",
	},
	{
		lang: "forth",
		idioms: []scriptIdiom{{
			name: "colon definitions, include and bye", main: "main.fs", want: "49 \n",
			files: map[string]string{
				"main.fs":   "include square.fs\n7 square . cr\nbye\n",
				"square.fs": ": square ( n -- n*n ) dup * ;\n",
			},
		}},
		badMain: "main.fs", bad: "frobnicate\nbye\n", badMessage: "Undefined word",
	},
}

func TestIdiomsScript(t *testing.T) {
	r, _ := newRunner(t)
	for _, l := range scriptLangs {
		t.Run(l.lang, func(t *testing.T) {
			// tsc alone takes seconds: let the languages overlap.
			t.Parallel()
			idiomEnv(t, r, l.lang)
			for _, id := range l.idioms {
				t.Run(id.name, func(t *testing.T) { runIdiom(t, r, l.lang, id) })
			}
			t.Run("syntax error", func(t *testing.T) {
				resp, err := r.Run(t.Context(), Request{Language: l.lang, Main: l.badMain, Files: []File{{Name: l.badMain, Content: []byte(l.bad)}}})
				if err != nil {
					t.Fatal(err)
				}
				// A compiled environment (typescript) stops at the compile.
				res := resp.Run
				if resp.Compile != nil && resp.Compile.Status != jail.StatusOK {
					res = resp.Compile
					if resp.Run != nil {
						t.Fatalf("ran after a failed compile: %+v", resp.Run)
					}
				}
				if res == nil || res.Status == jail.StatusOK {
					t.Fatalf("result %+v, want a failure", res)
				}
				out := string(res.Stdout) + string(res.Stderr)
				if !strings.Contains(out, l.badMessage) {
					t.Fatalf("output %q does not contain %q", out, l.badMessage)
				}
			})
		})
	}
}
