unit Helper;

interface

function Check(const Line: string; NArgs: Integer; const A, B, C, Test: string): string;

implementation

function Check(const Line: string; NArgs: Integer; const A, B, C, Test: string): string;
begin
  if (Line = 'stdin') and (NArgs = 3) and (A = 'foo') and (B = 'bar') and (C = 'baz') and (Test = 'test') then
    Check := 'OK'
  else
    Check := 'FAIL';
end;

end.
