print("the DEPLOYED clash.py ran")
