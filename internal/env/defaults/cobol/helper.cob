       IDENTIFICATION DIVISION.
       PROGRAM-ID. helper.

       DATA DIVISION.
       LINKAGE SECTION.
       01  L-INPUT             PIC X(64).
       01  L-ARGS              PIC X(64).
       01  L-TEST              PIC X(64).
       01  L-VERDICT           PIC X(4).

       PROCEDURE DIVISION USING L-INPUT L-ARGS L-TEST L-VERDICT.
           IF L-INPUT = "stdin" AND L-ARGS = "foo bar baz"
                   AND L-TEST = "test"
               MOVE "OK" TO L-VERDICT
           ELSE
               MOVE "FAIL" TO L-VERDICT
           END-IF
           GOBACK.
