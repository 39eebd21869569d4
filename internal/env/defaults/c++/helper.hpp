#include <string>
#include <vector>

std::string check(const std::string &in, const std::vector<std::string> &args, const std::string &test);
