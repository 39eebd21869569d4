import scala.io.Source

object Main {
  def main(args: Array[String]): Unit = {
    val input = Source.stdin.mkString
    val test = Source.fromFile("test.txt").mkString
    println(Helper.check(input, args.toList, test))
  }
}
