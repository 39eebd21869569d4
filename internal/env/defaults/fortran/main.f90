program main
  use helper, only: check
  implicit none
  character(len=64) :: line, arg, test
  character(len=64) :: args(3)
  integer :: i, u, ios

  read (*, '(a)', iostat=ios) line
  if (ios /= 0) line = ''
  do i = 1, 3
    call get_command_argument(i, arg)
    args(i) = arg
  end do
  test = ''
  open (newunit=u, file='test.txt', status='old', action='read', iostat=ios)
  if (ios == 0) then
    read (u, '(a)', iostat=ios) test
    close (u)
  end if
  print '(a)', check(line, command_argument_count(), args, test)
end program main
