source ./helper.sh
check "$(cat)" "$*" "$(cat test.txt)"
