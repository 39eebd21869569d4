public class Helper {
	static String check(String in, String[] args, String test) {
		boolean ok = in.equals("stdin\n") && String.join(" ", args).equals("foo bar baz") && test.equals("test\n");
		return ok ? "OK" : "FAIL";
	}
}
