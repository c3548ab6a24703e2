print("the LOCAL clash.py ran")
