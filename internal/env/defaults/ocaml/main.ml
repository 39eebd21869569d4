let read_all ic =
  let buf = Buffer.create 4096 in
  (try
     while true do
       Buffer.add_channel buf ic 1
     done
   with End_of_file -> ());
  Buffer.contents buf

let () =
  let input = read_all stdin in
  let args = List.tl (Array.to_list Sys.argv) in
  let test = read_all (open_in_bin "test.txt") in
  print_endline (Helper.check input args test)
