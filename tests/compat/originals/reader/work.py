with open("report.txt") as handle:
    print("reader read:", handle.read())
