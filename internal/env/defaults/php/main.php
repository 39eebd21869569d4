<?php
require 'helper.php';

echo check(stream_get_contents(STDIN), array_slice($argv, 1), file_get_contents('test.txt')), "\n";
