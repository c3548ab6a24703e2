import sys

print("loading training batch 1/3 ... ok")
print("loading training batch 2/3 ...")
print("MemoryError: unable to allocate 48.0 GiB for the batch tensor", file=sys.stderr)
sys.exit(1)
