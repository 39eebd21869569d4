import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

public class Main {
	public static void main(String[] args) throws Exception {
		String in = new String(System.in.readAllBytes(), StandardCharsets.UTF_8);
		String test = Files.readString(Path.of("test.txt"));
		System.out.println(Helper.check(in, args, test));
	}
}
