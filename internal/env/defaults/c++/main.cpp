#include <fstream>
#include <iostream>
#include <iterator>

#include "helper.hpp"

int main(int argc, char **argv) {
	std::string in((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
	std::ifstream f("test.txt");
	std::string test((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
	std::cout << check(in, std::vector<std::string>(argv + 1, argv + argc), test) << "\n";
}
