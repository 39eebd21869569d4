import Helper (check)
import System.Environment (getArgs)

main :: IO ()
main = do
  input <- getContents
  args <- getArgs
  test <- readFile "test.txt"
  putStrLn (check input args test)
