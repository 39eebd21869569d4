<?php
function check(string $stdin, array $args, string $test): string {
    return $stdin === "stdin\n" && $args === ["foo", "bar", "baz"] && $test === "test\n"
        ? "OK" : "FAIL " . json_encode([$stdin, $args, $test]);
}
