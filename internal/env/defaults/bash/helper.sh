check() {
	if [ "$1" = stdin ] && [ "$2" = "foo bar baz" ] && [ "$3" = test ]; then
		echo OK
	else
		echo "FAIL [$1] [$2] [$3]"
	fi
}
