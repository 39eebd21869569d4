; streq: rax = 1 when the NUL-terminated strings at rdi and rsi are equal.
global streq

section .text
streq:
.next:
        mov     al, [rdi]
        cmp     al, [rsi]
        jne     .differ
        test    al, al
        jz      .same
        inc     rdi
        inc     rsi
        jmp     .next
.same:
        mov     eax, 1
        ret
.differ:
        xor     eax, eax
        ret
