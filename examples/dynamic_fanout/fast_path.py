print("fast scan: sampled 1% of traffic, nothing unusual")
