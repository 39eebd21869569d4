       IDENTIFICATION DIVISION.
       PROGRAM-ID. conformance.

       ENVIRONMENT DIVISION.
       INPUT-OUTPUT SECTION.
       FILE-CONTROL.
           SELECT TEST-FILE ASSIGN TO "test.txt"
               ORGANIZATION IS LINE SEQUENTIAL.

       DATA DIVISION.
       FILE SECTION.
       FD  TEST-FILE.
       01  TEST-RECORD         PIC X(64).

       WORKING-STORAGE SECTION.
       01  WS-INPUT            PIC X(64).
       01  WS-ARGS             PIC X(64).
       01  WS-TEST             PIC X(64).
       01  WS-VERDICT          PIC X(4).

       PROCEDURE DIVISION.
           ACCEPT WS-INPUT
           ACCEPT WS-ARGS FROM COMMAND-LINE
           OPEN INPUT TEST-FILE
           READ TEST-FILE INTO WS-TEST
               AT END MOVE SPACES TO WS-TEST
           END-READ
           CLOSE TEST-FILE
           CALL "helper" USING WS-INPUT WS-ARGS WS-TEST WS-VERDICT
           DISPLAY FUNCTION TRIM(WS-VERDICT)
           STOP RUN.
