package body Helper is
   function Check (Input, Test : String; N_Args : Natural; Args : String) return String is
   begin
      if Input = "stdin" and then Test = "test" and then N_Args = 3 and then Args = "foo bar baz" then
         return "OK";
      end if;
      return "FAIL";
   end Check;
end Helper;
