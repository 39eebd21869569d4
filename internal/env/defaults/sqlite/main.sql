CREATE TABLE input(line TEXT);
-- stdin, one row a line: sqlite3 reads "|cat" from the pipe cat writes.
.import '|cat' input
.read helper.sql
