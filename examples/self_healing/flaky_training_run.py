"""A training run that fails the way its argument says: ram (host memory), cuda (GPU memory) or module."""

import sys

FAILURES = {
    "ram": "MemoryError: unable to allocate 48.0 GiB for the batch tensor",
    "cuda": "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB",
    "module": "ModuleNotFoundError: No module named 'flash_attn'",
}

print("loading training batch 1/3 ... ok")
print("loading training batch 2/3 ...")
print(FAILURES[sys.argv[1] if len(sys.argv) > 1 else "ram"], file=sys.stderr)
sys.exit(1)
