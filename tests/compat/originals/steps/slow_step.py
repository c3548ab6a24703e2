import time

time.sleep(1.5)
print("slow step done")
