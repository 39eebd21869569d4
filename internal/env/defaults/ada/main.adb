with Ada.Command_Line; use Ada.Command_Line;
with Ada.Text_IO;      use Ada.Text_IO;

with Helper;

procedure Main is
   F : File_Type;
begin
   Open (F, In_File, "test.txt");
   declare
      Input : constant String := Get_Line;
      Test  : constant String := Get_Line (F);
   begin
      Close (F);
      Put_Line (Helper.Check (Input, Test, Argument_Count,
                              (if Argument_Count >= 3 then Argument (1) & " " & Argument (2) & " " & Argument (3) else "")));
   end;
end Main;
