module helper
  implicit none
contains
  function check(line, nargs, args, test) result(verdict)
    character(len=*), intent(in) :: line, test
    integer, intent(in) :: nargs
    character(len=*), intent(in) :: args(3)
    character(len=:), allocatable :: verdict

    if (trim(line) == 'stdin' .and. nargs == 3 .and. args(1) == 'foo' .and. &
        args(2) == 'bar' .and. args(3) == 'baz' .and. trim(test) == 'test') then
      verdict = 'OK'
    else
      verdict = 'FAIL'
    end if
  end function check
end module helper
