const fs = require("fs");
const { check } = require("./helper.js");

console.log(check(fs.readFileSync(0, "utf8"), process.argv.slice(2), fs.readFileSync("test.txt", "utf8")));
