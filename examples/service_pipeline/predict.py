"""A job that calls the model server (it starts only once the server's port accepts connections)."""

import json
import sys
import urllib.request

port = int(sys.argv[1])
for x in (1, 2, 3):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/predict?x={x}", timeout=10) as response:
        answer = json.load(response)
    print(f"predict({x:g}) = {answer['y']:g}")
