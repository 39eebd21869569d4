; x86-64 Linux, no libc: system calls only. streq comes from helper.asm.
global _start
extern streq

%macro expect 2                 ; string at %1 must equal string at %2
        mov     rdi, %1
        lea     rsi, [rel %2]
        call    streq
        test    eax, eax
        jz      fail
%endmacro

section .data
want_in:   db "stdin", 10, 0
want_test: db "test", 10, 0
foo:       db "foo", 0
bar:       db "bar", 0
baz:       db "baz", 0
name:      db "test.txt", 0
ok:        db "OK", 10
no:        db "FAIL", 10

section .bss
input:     resb 64
test:      resb 64

section .text
_start:
        mov     r12, rsp                ; [r12] argc, [r12+8] argv[0], …

        xor     eax, eax                ; read(0, input, 63)
        xor     edi, edi
        lea     rsi, [rel input]
        mov     edx, 63
        syscall

        mov     eax, 2                  ; open("test.txt", O_RDONLY)
        lea     rdi, [rel name]
        xor     esi, esi
        syscall
        test    rax, rax
        js      fail
        mov     edi, eax                ; read(fd, test, 63)
        xor     eax, eax
        lea     rsi, [rel test]
        mov     edx, 63
        syscall

        cmp     qword [r12], 4
        jne     fail
        lea     rbx, [rel input]
        expect  rbx, want_in
        lea     rbx, [rel test]
        expect  rbx, want_test
        expect  [r12+16], foo
        expect  [r12+24], bar
        expect  [r12+32], baz

        lea     rsi, [rel ok]
        mov     edx, 3
        jmp     print
fail:
        lea     rsi, [rel no]
        mov     edx, 5
print:
        mov     eax, 1                  ; write(1, rsi, rdx)
        mov     edi, 1
        syscall
        mov     eax, 60                 ; exit(0)
        xor     edi, edi
        syscall
