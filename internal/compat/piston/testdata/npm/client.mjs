// Runs the npm piston-client against a server given as the first
// argument (the Piston base URL) and prints what it got as JSON.
import piston from "piston-client";

const client = piston({ server: process.argv[2] });
const runtimes = await client.runtimes();
const result = await client.execute("python", "print(1)");
const stdin = await client.execute("python", "print(input()[::-1])", { stdin: "abc" });
console.log(JSON.stringify({ runtimes, result, stdin }));
