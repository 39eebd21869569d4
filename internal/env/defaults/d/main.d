import std.file : readText;
import std.stdio;

import helper;

void main(string[] args)
{
    string input;
    foreach (line; stdin.byLine(KeepTerminator.yes))
        input ~= line;
    writeln(check(input, args[1 .. $], readText("test.txt")));
}
