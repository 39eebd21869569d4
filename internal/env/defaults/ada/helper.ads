package Helper is
   function Check (Input, Test : String; N_Args : Natural; Args : String) return String;
end Helper;
