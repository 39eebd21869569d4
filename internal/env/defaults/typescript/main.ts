import * as fs from "fs";
import { check } from "./helper";

const args: string[] = process.argv.slice(2);
console.log(check(fs.readFileSync(0, "utf8"), args, fs.readFileSync("test.txt", "utf8")));
