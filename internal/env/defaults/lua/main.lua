local helper = require("helper")

local f = assert(io.open("test.txt"))
local test = f:read("a")
f:close()
print(helper.check(io.read("a"), arg, test))
