using System;
using System.IO;

class Program
{
    static void Main(string[] args)
    {
        string input = Console.In.ReadToEnd();
        string test = File.ReadAllText("test.txt");
        Console.WriteLine(Helper.Check(input, args, test));
    }
}
