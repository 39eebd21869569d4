#include "helper.hpp"

std::string check(const std::string &in, const std::vector<std::string> &args, const std::string &test) {
	std::vector<std::string> want{"foo", "bar", "baz"};
	return in == "stdin\n" && args == want && test == "test\n" ? "OK" : "FAIL";
}
