import sys

print("deployed worker ran with", sys.argv[1:])
