-- Read by main.sql with .read: the verdict, from what main.sql loaded.
SELECT CASE WHEN (SELECT group_concat(line, '|') FROM input) = 'stdin'
             AND CAST(readfile('test.txt') AS TEXT) = 'test' || char(10)
            THEN 'OK' ELSE 'FAIL' END;
