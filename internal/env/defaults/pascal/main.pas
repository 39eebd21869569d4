program Main;

uses Helper;

var
  Line, Test: string;
  F: Text;
  I: Integer;
  Args: array[1..3] of string;

begin
  ReadLn(Line);
  Assign(F, 'test.txt');
  Reset(F);
  ReadLn(F, Test);
  Close(F);
  for I := 1 to 3 do
    Args[I] := ParamStr(I);
  WriteLn(Check(Line, ParamCount, Args[1], Args[2], Args[3], Test));
end.
