import java.io.File

fun main(args: Array<String>) {
    val input = String(System.`in`.readBytes())
    println(check(input, args.toList(), File("test.txt").readText()))
}
