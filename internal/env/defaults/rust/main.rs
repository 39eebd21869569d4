mod helper;

use std::io::Read;

fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).unwrap();
    let test = std::fs::read_to_string("test.txt").unwrap_or_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("{}", helper::check(&input, &args, &test));
}
