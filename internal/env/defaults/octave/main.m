% check() is a function file, check.m, beside this script.
in = fgetl(stdin);
test = fileread("test.txt");
disp(check(strtrim(in), argv(), strtrim(test)));
