import os
import sys

print(f"step {os.environ.get('TITAN_JOB_ID')} args={sys.argv[1:]}")
