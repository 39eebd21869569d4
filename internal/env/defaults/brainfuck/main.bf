Brainfuck has no files and no args: this program turns the first two bytes
of stdin into OK (s minus 36 is O and t minus 41 is K) and ends the line
,------------------------------------.
,-----------------------------------------.
>++++++++++.
